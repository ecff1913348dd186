"""Vendor JavaScript payload codecs in a sandbox: the only module that touches the JS engine.

Engine: QuickJS (the `quickjs-ng` wheel). Each codec gets its own runtime and context, with
limits that QuickJS enforces inside the engine on every call: CPU time (an interrupt handler
that compares C `clock()` with the call's start), heap bytes (the runtime's malloc limit) and
stack bytes. The bare engine has no `require`, modules, file, network or timer functions
(`std`/`os` are only there when a host loads them; we never do), so a codec can only compute.

Three codec APIs are recognised, newest first:
- LoRa Alliance TS013 (The Things Stack, ChirpStack v4): `decodeUplink({bytes, fPort,
  recvTime, variables})` returns `{data, errors, warnings}`;
- ChirpStack v3: `Decode(fPort, bytes, variables)` returns the data object;
- TTN v2: `Decoder(bytes, port)` returns the data object.

The engine's context is not thread safe: a codec is called from the thread that built it
(the pipeline's event loop thread, or the CLI). Calls run synchronously: one slow codec stalls
the others for at most its time limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import quickjs

from gateway.errors import DecodeError
from gateway.operations.counters import CODEC_WARNINGS

DEFAULT_TIMEOUT_MS = 100
DEFAULT_MEMORY_MB = 16
DEFAULT_STACK_KB = 256

# Evaluated before the vendor's code: what the engine itself defines.
_BUILTINS = "var __gateway_builtins = Object.getOwnPropertyNames(globalThis);"

# Injected after the vendor's code. The frame arrives as a Latin-1 string (one char per byte:
# the cheapest way across the engine boundary, ~1 us less than hex) and the answer leaves as
# JSON text, which orjson reads faster than walking JS objects from Python. `bytes` is a plain
# Array of numbers, as The Things Stack and ChirpStack pass it.
_HARNESS = """
var __gateway_decode = (function () {
  var api = typeof decodeUplink === "function" ? 1
          : typeof Decode === "function" ? 2
          : typeof Decoder === "function" ? 3 : 0;
  // The Things Stack and ChirpStack give every call a fresh engine, and codecs count on it
  // (a top-level `var pointer = 0` advanced by each call). Re-creating the runtime per call
  // costs ~0.1-1 ms, so the top-level variables holding plain values are put back instead.
  var names = Object.getOwnPropertyNames(globalThis).filter(function (name) {
    var value = globalThis[name];
    return __gateway_builtins.indexOf(name) < 0 && name.indexOf("__gateway_") !== 0 &&
      (value === null || (typeof value !== "function" && typeof value !== "object"));
  });
  var values = names.map(function (name) { return globalThis[name]; });
  var run = function (text, fPort, recvMs) {
    for (var n = 0; n < names.length; n++) globalThis[names[n]] = values[n];
    var bytes = new Array(text.length);
    for (var i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
    var out;
    if (api === 1) {
      out = decodeUplink({bytes: bytes, fPort: fPort, recvTime: new Date(recvMs), variables: {}});
    } else if (api === 2) {
      out = {data: Decode(fPort, bytes, {})};
    } else {
      out = {data: Decoder(bytes, fPort)};
    }
    return JSON.stringify(out === undefined ? null : out);
  };
  return api === 0 ? null : run;
})();
"""
_ENTRY = "__gateway_decode"

_warnings = CODEC_WARNINGS


def warning_counts() -> dict[str, int]:
    """Codec warnings returned so far, by codec name (the script's file name); the side
    channel for the gateway's figures, since a reading with warnings is still stored."""
    return dict(_warnings)


class CodecLoadError(ValueError):
    """The codec's source does not compile or defines none of the three entry points."""


@dataclass(frozen=True, slots=True)
class CodecLimits:
    timeout_ms: int = DEFAULT_TIMEOUT_MS
    memory_mb: int = DEFAULT_MEMORY_MB
    stack_kb: int = DEFAULT_STACK_KB


@dataclass(frozen=True, slots=True)
class CodecResult:
    data: Any
    warnings: tuple[str, ...]


class JavascriptCodec:
    """One vendor codec in its own QuickJS runtime. `decode` raises DecodeError with reason
    codec_error, codec_timeout or codec_memory; after a limit the runtime is rebuilt, because
    an interrupted codec may have left its globals half-updated."""

    def __init__(self, source: str, name: str, limits: CodecLimits | None = None) -> None:
        self.name = name
        self._source = source
        self._limits = limits or CodecLimits()
        self._run = self._build()

    def _build(self) -> Any:
        context = quickjs.Context()
        limits = self._limits
        context.set_memory_limit(limits.memory_mb * 1024 * 1024)
        context.set_max_stack_size(limits.stack_kb * 1024)
        try:
            # Loading runs the codec's top level too: it gets the same time limit as a call.
            context.set_time_limit(limits.timeout_ms / 1000)
            context.eval(_BUILTINS)
            context.eval(self._source)
            context.eval(_HARNESS)
        except (quickjs.JSException, quickjs.StackOverflow) as exc:
            raise CodecLoadError(f"{self.name}: {_first_line(exc)}") from None
        run = context.get(_ENTRY)
        if run is None:
            raise CodecLoadError(
                f"{self.name}: defines none of decodeUplink(input) (TS013), "
                "Decode(fPort, bytes, variables) (ChirpStack v3) or Decoder(bytes, port) (TTN v2)"
            )
        self._context = context  # the function object needs its context alive
        return run

    def decode(self, frame: bytes, fport: int, received_ms: int = 0) -> CodecResult:
        try:
            text = self._run(frame.decode("latin-1"), fport, received_ms)
        except quickjs.StackOverflow:
            self._run = self._build()
            raise DecodeError("codec_memory", f"{self.name}: stack exhausted") from None
        except quickjs.JSException as exc:
            raise self._failure(_first_line(exc)) from None
        return self._result(orjson.loads(text))

    def _failure(self, message: str) -> DecodeError:
        # QuickJS reports its own limits as InternalError with these fixed messages.
        if message.startswith("InternalError: interrupted"):
            self._run = self._build()
            limit = self._limits.timeout_ms
            return DecodeError("codec_timeout", f"{self.name}: ran longer than {limit} ms")
        if message.startswith("InternalError: out of memory"):
            self._run = self._build()
            limit = self._limits.memory_mb
            return DecodeError("codec_memory", f"{self.name}: needed more than {limit} MB")
        return DecodeError("codec_error", f"{self.name}: {message}")

    def _result(self, out: Any) -> CodecResult:
        if type(out) is not dict:
            raise DecodeError("codec_error", f"{self.name}: returned {_kind(out)}, not an object")
        errors = out.get("errors")
        if errors:
            shown = "; ".join(str(error) for error in errors) if type(errors) is list else errors
            raise DecodeError("codec_error", f"{self.name}: {shown}")
        data = out.get("data")
        if type(data) is not dict:
            raise DecodeError("codec_error", f"{self.name}: returned {_kind(data)} as data")
        warnings = out.get("warnings")
        if not warnings:
            return CodecResult(data, ())
        found = tuple(str(w) for w in warnings) if type(warnings) is list else (str(warnings),)
        _warnings[self.name] += len(found)
        return CodecResult(data, found)


def _first_line(exc: BaseException) -> str:
    """QuickJS appends the JS stack trace after the message; the message is what matters."""
    return str(exc).split("\n", 1)[0][:500]


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__.replace("dict", "object")
