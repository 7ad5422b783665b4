"""The plugin host for Python: loads the SCIM component with wasmtime-py's component-model API
and answers each request with a fresh instance in a fresh store, bounded in memory and time like
the reference host (host-harness/src/component.rs).
"""

import json
import sys
import threading
import time
from typing import Any

import wasmtime
from wasmtime import component as cm

from settings import MemorySettings
from user_store import Err, MemoryStore, Ok

ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"

# The reference host's limits. 64 MiB of linear memory holds a 1 MiB body parsed several times
# over; a request that runs 10 s inside the component is stopped.
MEMORY_BYTES = 64 << 20
DEADLINE_SECONDS = 10
# How often the engine's epoch advances; deadlines are counted in these ticks.
EPOCH_TICK_SECONDS = 0.01

# wasmtime-py lowers a `result` by the Python type of the value, without a tag, when the ok and
# err cases look different. For `result<option<user>, store-error>` the ok case (an option,
# whose `none` accepts any object) swallows every value, so an error can never be returned.
# Treating every result as tagged makes the host say `Variant("ok", …)` / `Variant("err", …)`
# explicitly. Only this component's imports return results: WASI is implemented by wasmtime.
cm.ResultType._tagged = lambda self: True  # type: ignore[method-assign]


class PluginHost:
    """One engine, one linker and one compiled component, shared by every request."""

    def __init__(self, wasm_path: str) -> None:
        config = wasmtime.Config()
        config.epoch_interruption = True
        self.engine = wasmtime.Engine(config)
        self.component = cm.Component.from_file(self.engine, wasm_path)
        self.linker = cm.Linker(self.engine)
        self.linker.add_wasip2()
        self._link_imports()
        # The store and settings the next request sees; the runner sets them per suite.
        self.store: MemoryStore = MemoryStore()
        self.settings: MemorySettings = MemorySettings(base_url="")
        self.requests = 0
        self.instantiate_seconds = 0.0
        self.call_seconds = 0.0
        threading.Thread(target=self._tick, name="scim-epoch", daemon=True).start()

    def _tick(self) -> None:
        while True:
            time.sleep(EPOCH_TICK_SECONDS)
            self.engine.increment_epoch()

    def _link_imports(self) -> None:
        def store_call(method: str):
            return lambda _ctx, *args: to_wit(getattr(self.store, method)(*map(from_wit, args)))

        with self.linker.root() as root:
            with root.add_instance("scim:provider/user-store@0.1.0") as user_store:
                for name in (
                    "get", "find-by-user-name", "find-by-external-id", "find-by-email",
                    "page", "scan", "create", "update", "delete",
                ):
                    user_store.add_func(name, store_call(name.replace("-", "_")))
            with root.add_instance("scim:provider/settings@0.1.0") as settings:
                settings.add_func("current", lambda _ctx: to_wit(self.settings.current()))

    def handle(self, request: dict) -> dict:
        """Answers one `http-request` (a dict by the WIT's field names) with a fresh instance. A
        trap, an exhausted memory cap or a missed deadline answers this request alone with a 500."""
        self.requests += 1
        started = time.perf_counter()
        try:
            store = wasmtime.Store(self.engine)
            store.set_limits(memory_size=MEMORY_BYTES)
            store.set_epoch_deadline(round(DEADLINE_SECONDS / EPOCH_TICK_SECONDS))
            wasi = wasmtime.WasiConfig()
            wasi.inherit_stderr()
            store.set_wasi(wasi)
            instance = self.linker.instantiate(store, self.component)
            handle_scim_request = instance.get_func(store, "handle-scim-request")
            instantiated = time.perf_counter()
            self.instantiate_seconds += instantiated - started
            started = instantiated
            response = from_wit(handle_scim_request(store, to_wit(request)))
            handle_scim_request.post_return(store)
            return response
        except Exception as trap:  # a trap, or a failure of this host's own imports
            print(f"the SCIM component failed a request: {trap}", file=sys.stderr)
            return scim_error(500, f"the request could not be completed ({trap_kind(trap)})")
        finally:
            self.call_seconds += time.perf_counter() - started


def to_wit(value: Any) -> Any:
    """Python values as wasmtime-py lowers them: records as `Record`s with the WIT's field names,
    results and variants as tagged `Variant`s."""
    if isinstance(value, Ok):
        return cm.Variant("ok", to_wit(value.value))
    if isinstance(value, Err):
        return cm.Variant("err", cm.Variant(value.case, value.payload))
    if isinstance(value, dict):
        record = cm.Record()
        for name, field in value.items():
            setattr(record, name, to_wit(field))
        return record
    if isinstance(value, list):
        return [to_wit(item) for item in value]
    return value


def from_wit(value: Any) -> Any:
    """The values wasmtime-py lifts, as plain dicts and lists."""
    if isinstance(value, cm.Record):
        return {name: from_wit(field) for name, field in vars(value).items()}
    if isinstance(value, list):
        return [from_wit(item) for item in value]
    return value


def trap_kind(error: Exception) -> str:
    """A short name for why the component stopped, as the reference host words it. wasmtime-py
    gives a component call's failure as a WasmtimeError whose message names the trap."""
    message = str(error)
    for marker, kind in TRAP_KINDS:
        if marker in message:
            return kind
    return "trap" if "wasm trap" in message else "host error"


TRAP_KINDS = [
    ("interrupt", "deadline exceeded"),
    ("unreachable", "guest panic or out of memory"),
    ("stack overflow", "stack overflow"),
    ("out of bounds memory access", "memory out of bounds"),
]


def scim_error(status: int, detail: str) -> dict:
    """A SCIM error response (RFC 7644 §3.12)."""
    body = {"schemas": [ERROR_SCHEMA], "status": str(status), "detail": detail}
    return {
        "status": status,
        "headers": [{"name": "Content-Type", "value": "application/scim+json"}],
        "body": json.dumps(body, separators=(",", ":")).encode(),
    }
