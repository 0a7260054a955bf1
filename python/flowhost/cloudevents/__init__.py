"""CloudEvents 1.0 over HTTP: binary, structured and batched content modes, validated against
the spec (docs/cloudevents.md).

```python
from flowhost.cloudevents import parse_http

for event in parse_http(request.headers, body):   # raises flowhost.errors.CloudEventError
    name, payload = event.as_event()                # name = the CloudEvent type
```

A pure library: no database, no HTTP server. `CloudEventError` is a `ValueError` whose `status`
(400, or 415 for an event format other than JSON) is the HTTP answer a receiver gives.
"""

from flowhost.cloudevents.event import NO_DATA, CloudEvent, DataKind
from flowhost.cloudevents.http_binding import ContentMode, Headers, content_mode, parse_http
from flowhost.errors import CloudEventError

__all__ = [
    "NO_DATA",
    "CloudEvent",
    "CloudEventError",
    "ContentMode",
    "DataKind",
    "Headers",
    "content_mode",
    "parse_http",
]
