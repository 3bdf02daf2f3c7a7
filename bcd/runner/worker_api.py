"""The worker API a batching command talks to: gRPC `pachyderm.worker.Worker/NextDatum`.

A command with `transform.datum_batching` calls `NextDatum(error)` when it is ready for a
datum: `error` empty says the previous datum (if any) succeeded, non-empty that it failed.
The call stays open until the runner answers with the next datum's environment
(`NextDatumResponse.env`, `KEY=VALUE` strings), or until the runner gives up on the
command. Served with the message types of the official client (`pachyderm_sdk`), so the
wire format is the one `Client().worker.next_datum()` speaks; only on 127.0.0.1, on a
port of its own per command start (`PPS_WORKER_GRPC_PORT`): a call still in flight from
a command that was just killed can then never be taken for its successor's.

The other methods of the service (Status, Cancel) are for pachd, not for user code, and
answer UNIMPLEMENTED. Needs `pachyderm-sdk` (and so grpcio), which `run` checks first.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
from pachyderm_sdk.api.worker import NextDatumRequest, NextDatumResponse
from pachyderm_sdk.constants import WORKER_PORT_ENV

# Where the client looks for the port: `Client().worker` connects to localhost:$PORT_ENV.
PORT_ENV: str = WORKER_PORT_ENV

# The service and method names of src/worker/worker.proto in pachyderm/pachyderm.
SERVICE = "pachyderm.worker.Worker"
NEXT_DATUM = "NextDatum"


class NextDatumCall:
    """One NextDatum call, held open until `reply` or until the server closes."""

    def __init__(self, error: str) -> None:
        self.error = error
        self._done = threading.Condition()
        self._env: list[str] | None = None
        self._ended = False

    def reply(self, env: Sequence[str]) -> None:
        """Answer the call with the next datum's environment."""
        with self._done:
            self._env = list(env)
            self._done.notify_all()

    def end(self) -> None:
        """Give up on the call: its client went away, or the server is closing."""
        with self._done:
            self._ended = True
            self._done.notify_all()

    def wait(self) -> list[str] | None:
        """The reply, or None once the call ended without one."""
        with self._done:
            self._done.wait_for(lambda: self._env is not None or self._ended)
            return self._env


class WorkerApiServer:
    """A Worker service on 127.0.0.1; every NextDatum call goes to `on_call`, in order.

    One call is served at a time, as Pachyderm's worker does (its NextDatum holds a
    mutex): a second concurrent call waits until the first is answered or ends.
    """

    def __init__(self, on_call: Callable[[NextDatumCall], None]) -> None:
        self._on_call = on_call
        self._lock = threading.Lock()
        self._open_calls: set[NextDatumCall] = set()
        self._closed = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="worker-api")
        handler = grpc.method_handlers_generic_handler(
            SERVICE,
            {
                NEXT_DATUM: grpc.unary_unary_rpc_method_handler(
                    self._next_datum,
                    request_deserializer=NextDatumRequest.FromString,
                    response_serializer=NextDatumResponse.SerializeToString,
                )
            },
        )
        self._server = grpc.server(self._executor, handlers=[handler])
        self.port: int = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()

    def _next_datum(self, request: Any, context: Any) -> Any:
        call = NextDatumCall(request.error)
        with self._lock:
            accepted = not self._closed
            if accepted:
                self._open_calls.add(call)
        # The client hanging up (killed, or gone) ends the call; so does close().
        if not accepted or not context.add_callback(call.end):
            call.end()
        else:
            self._on_call(call)
        env = call.wait()
        with self._lock:
            self._open_calls.discard(call)
        if env is None:
            context.abort(grpc.StatusCode.CANCELLED, "the worker stopped this user code")
        return NextDatumResponse(env=env)

    def close(self) -> None:
        """Stop serving: open calls end unanswered, later ones are refused."""
        with self._lock:
            self._closed = True
            calls = list(self._open_calls)
        for call in calls:
            call.end()
        self._server.stop(grace=None).wait()
        self._executor.shutdown(wait=True)

    def __enter__(self) -> WorkerApiServer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
