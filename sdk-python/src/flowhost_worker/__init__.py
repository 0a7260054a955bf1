"""Write flowhost step functions in Python.

```python
from flowhost_worker import step

@step(flow="orders", name="validate", entry=True, emits=["order.validated"], attempts=3)
async def validate(order: dict, ctx) -> dict:
    await ctx.state.set("order", order)
    ctx.logger.info("validated", order_id=order["id"])
    await ctx.emit("order.validated", {"id": order["id"]})
    return {"ok": True}
```
"""

from flowhost_worker.awaits import Await, Awaited
from flowhost_worker.config import Backoff, StepConfig
from flowhost_worker.context import ContextBackend, FlowControl, RunContext, RunState, StepLogger
from flowhost_worker.errors import (
    ActionError,
    JobEndedError,
    RetryRequested,
    StepConfigError,
    WorkerError,
)
from flowhost_worker.step import step, step_config

__version__ = "0.1.0"

__all__ = [
    "ActionError",
    "Await",
    "Awaited",
    "Backoff",
    "ContextBackend",
    "FlowControl",
    "JobEndedError",
    "RetryRequested",
    "RunContext",
    "RunState",
    "StepConfig",
    "StepConfigError",
    "StepLogger",
    "WorkerError",
    "__version__",
    "step",
    "step_config",
]
