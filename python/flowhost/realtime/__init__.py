"""Realtime streams of run events: one listener per process (fanout), the streams it feeds
(follow), served as Server-Sent Events by the API and followed by `flowhost runs logs`."""
