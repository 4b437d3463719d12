"""Type stubs of the Python DSL (``weir._dsl``): generic blueprints ``Source[T]``, ``Flow[In, Out]``,
``Sink[In, Mat]`` and ``RunnableGraph[Mat]``.

The runtime classes share their operators through one base class; Python's type system cannot say
"the same kind of blueprint with another element type" there, so the operators are declared here,
once per blueprint kind. ``Mat`` is the value ``run()`` returns (sink results resolved);
``RunHandle.materialized`` is the raw value. ``pyapi/tests/test_typing.py`` checks that this file
matches the runtime (mypy's stubtest and its own check of inherited operators) and that the
checkers accept and reject what ``pyapi/tests/typing/check_types.py`` says they should.
"""

import logging
from typing import (
    Any,
    Awaitable,
    AsyncIterable,
    Callable,
    Dict,
    FrozenSet,
    Generic,
    Iterable,
    List,
    Optional,
    Sequence,
    Tuple,
    Type,
    TypeVar,
    Union,
    overload,
)

from typing_extensions import Literal, Never, Self, TypeAlias
import os

from . import _native
from ._actors import Actor, Mailbox
from ._persistence import EventSourcedEntity, Journal
from ._handles import SinkQueue
from ._native import ActorRef, Inlet, MatKey, Outlet, ProcessContext, SinkFuture
from ._run import RunHandle
from .cluster import ClusterNode
from .interpreters import InterpreterPool
from ._windows import Watermarks, WindowKind, Windowed
from ._keyed import Field
from ._join import JoinBy

_T = TypeVar("_T")
_T_co = TypeVar("_T_co", covariant=True)
_In_contra = TypeVar("_In_contra", contravariant=True)
_Out_co = TypeVar("_Out_co", covariant=True)
_Mat_co = TypeVar("_Mat_co", covariant=True)
_Up = TypeVar("_Up")
_U = TypeVar("_U")
_V = TypeVar("_V")
_K = TypeVar("_K")
_A = TypeVar("_A")
_M = TypeVar("_M")
_S = TypeVar("_S")
_I = TypeVar("_I")

Keep: TypeAlias = Literal["left", "right", "both", "none"]
"""How materialized values combine: ``"left"``, ``"right"``, ``"both"`` or ``"none"``."""

Directive: TypeAlias = Literal["stop", "resume", "restart"]
_KeyCodec: TypeAlias = Literal["builtin", "pickle"]
_StrPath: TypeAlias = Union[str, "os.PathLike[str]"]
"""A supervision directive."""

SupervisionRules: TypeAlias = Sequence[Tuple[Type[BaseException], Directive]]
"""Exception classes mapped to directives (first match wins)."""

DeadLetters: TypeAlias = Union[Callable[[Any, BaseException, str], object], List["DeadLetter"]]
"""Where dropped elements go: ``f(element, error, stage)`` or a list of :class:`DeadLetter`."""

BatchFormat: TypeAlias = Literal["pyarrow", "pandas", "polars", "numpy"]
"""The form ``map_batches`` hands a batch in (``None``: a list of elements)."""

Overflow: TypeAlias = Literal["backpressure", "drop_head", "drop_tail", "drop_buffer", "drop_new", "fail"]
"""What a full buffer does with one more element."""

ThrottleMode: TypeAlias = Literal["shaping", "enforcing"]
"""``throttle``: hold elements until their token arrives, or fail."""

_Pool: TypeAlias = Union[InterpreterPool, int, bool, None]

class DeadLetter(Tuple[Any, BaseException, str]):
    """An element dropped under ``resume``/``restart``: ``(element, error, stage)``."""

    def __new__(cls, element: Any, error: BaseException, stage: str) -> Self: ...
    @property
    def element(self) -> Any: ...
    @property
    def error(self) -> BaseException: ...
    @property
    def stage(self) -> str: ...

class SubFlows(Generic[_Up, _T]):
    """Substreams of ``T`` split off the blueprint ``Up``; merged back into the same kind."""

    def __init__(self, upstream: Any, make: Callable[[Flow[Any, Any]], Any], what: str) -> None: ...
    @overload
    def merge_substreams_via(self: SubFlows[Source[Any], _V], flow: Flow[_V, _U]) -> Source[_U]: ...
    @overload
    def merge_substreams_via(self: SubFlows[Flow[_I, Any], _V], flow: Flow[_V, _U]) -> Flow[_I, _U]: ...
    @overload
    def merge_substreams(self: SubFlows[Source[Any], _V]) -> Source[_V]: ...
    @overload
    def merge_substreams(self: SubFlows[Flow[_I, Any], _V]) -> Flow[_I, _V]: ...

class _Meta:
    pools: FrozenSet[Any]
    def __init__(self, pools: FrozenSet[Any] = ...) -> None: ...
    def __or__(self, other: _Meta) -> _Meta: ...

class _Blueprint:
    _meta: _Meta
    def __init__(self, native: Optional[_native.Blueprint], meta: Optional[_Meta] = None) -> None: ...
    @property
    def _n(self) -> _native.Blueprint: ...
    def named(self, name: str) -> Self: ...
    def uid(self, uid: str) -> Self: ...
    def async_boundary(self) -> Self: ...
    def parallelism(self, n: int) -> Self: ...
    def batch_size(self, rows: int) -> Self: ...
    def buffer_rows(self, rows: int) -> Self: ...
    def with_supervision(
        self,
        supervision: Optional[SupervisionRules] = None,
        default: Directive = "stop",
        dead_letters: Optional[DeadLetters] = None,
    ) -> Self: ...
    def to_mermaid(self) -> str: ...
    def to_dot(self) -> str: ...

class _Linear(_Blueprint):
    def __init__(
        self,
        native: Optional[_native.Blueprint],
        meta: Optional[_Meta] = None,
        ops: Tuple[Any, ...] = (),
        src: Any = None,
    ) -> None: ...

class Keyed(Generic[_Up, _K, _T]):
    """Elements ``T`` of the blueprint ``Up`` grouped by keys ``K``; aggregates give ``(K, result)``."""

    def __init__(
        self, upstream: Any, key: Optional[Callable[[Any], Any]], sup: Any = None, key_codec: str = "builtin"
    ) -> None: ...
    @overload
    def count(self: Keyed[Source[Any], _K, Any]) -> Source[Tuple[_K, int]]: ...
    @overload
    def count(self: Keyed[Flow[_I, Any], _K, Any]) -> Flow[_I, Tuple[_K, int]]: ...
    @overload
    def sum(self: Keyed[Source[Any], _K, Any], field: Field = None) -> Source[Tuple[_K, Union[int, float]]]: ...
    @overload
    def sum(self: Keyed[Flow[_I, Any], _K, Any], field: Field = None) -> Flow[_I, Tuple[_K, Union[int, float]]]: ...
    @overload
    def min(self: Keyed[Source[Any], _K, Any], field: Field = None) -> Source[Tuple[_K, Union[int, float]]]: ...
    @overload
    def min(self: Keyed[Flow[_I, Any], _K, Any], field: Field = None) -> Flow[_I, Tuple[_K, Union[int, float]]]: ...
    @overload
    def max(self: Keyed[Source[Any], _K, Any], field: Field = None) -> Source[Tuple[_K, Union[int, float]]]: ...
    @overload
    def max(self: Keyed[Flow[_I, Any], _K, Any], field: Field = None) -> Flow[_I, Tuple[_K, Union[int, float]]]: ...
    @overload
    def mean(self: Keyed[Source[Any], _K, Any], field: Field = None) -> Source[Tuple[_K, float]]: ...
    @overload
    def mean(self: Keyed[Flow[_I, Any], _K, Any], field: Field = None) -> Flow[_I, Tuple[_K, float]]: ...
    @overload
    def first(self: Keyed[Source[Any], _K, _V], field: None = None) -> Source[Tuple[_K, _V]]: ...
    @overload
    def first(self: Keyed[Source[Any], _K, Any], field: Field) -> Source[Tuple[_K, Any]]: ...
    @overload
    def first(self: Keyed[Flow[_I, Any], _K, _V], field: None = None) -> Flow[_I, Tuple[_K, _V]]: ...
    @overload
    def first(self: Keyed[Flow[_I, Any], _K, Any], field: Field) -> Flow[_I, Tuple[_K, Any]]: ...
    @overload
    def last(self: Keyed[Source[Any], _K, _V], field: None = None) -> Source[Tuple[_K, _V]]: ...
    @overload
    def last(self: Keyed[Source[Any], _K, Any], field: Field) -> Source[Tuple[_K, Any]]: ...
    @overload
    def last(self: Keyed[Flow[_I, Any], _K, _V], field: None = None) -> Flow[_I, Tuple[_K, _V]]: ...
    @overload
    def last(self: Keyed[Flow[_I, Any], _K, Any], field: Field) -> Flow[_I, Tuple[_K, Any]]: ...
    @overload
    def fold(self: Keyed[Source[Any], _K, _V], zero: _A, fn: Callable[[_A, _V], _A]) -> Source[Tuple[_K, _A]]: ...
    @overload
    def fold(self: Keyed[Flow[_I, Any], _K, _V], zero: _A, fn: Callable[[_A, _V], _A]) -> Flow[_I, Tuple[_K, _A]]: ...
    @overload
    def reduce(self: Keyed[Source[Any], _K, _V], fn: Callable[[_V, _V], _V]) -> Source[Tuple[_K, _V]]: ...
    @overload
    def reduce(self: Keyed[Flow[_I, Any], _K, _V], fn: Callable[[_V, _V], _V]) -> Flow[_I, Tuple[_K, _V]]: ...
    @overload
    def process(
        self: Keyed[Source[Any], _K, _V],
        on_element: Callable[[_V, ProcessContext], Any],
        on_timer: Optional[Callable[[float, str, ProcessContext], Any]] = None,
    ) -> Source[Any]: ...
    @overload
    def process(
        self: Keyed[Flow[_I, Any], _K, _V],
        on_element: Callable[[_V, ProcessContext], Any],
        on_timer: Optional[Callable[[float, str, ProcessContext], Any]] = None,
    ) -> Flow[_I, Any]: ...
    def window(
        self,
        windows: WindowKind,
        *,
        allowed_lateness: float = 0.0,
        late_to: Optional[Sink[Any, Any]] = None,
        processing_time: bool = False,
    ) -> Windowed[_Up, _K, _T]: ...

class Source(_Linear, Generic[_T_co]):
    """A blueprint with one output of elements ``T``: where elements come from."""

    @staticmethod
    def from_tcp(
        addr: str, *, mode: str = "connect", framing: str = "lines", max_frame_length: int = 1 << 20, json: bool = False
    ) -> Source[Any]: ...
    @staticmethod
    def stdin(*, json: bool = False) -> Source[Any]: ...
    @staticmethod
    def events_by_persistence_id(journal: Journal, pid: str, from_seq: int = 1, live: bool = False) -> Source[Dict[str, Any]]: ...
    @staticmethod
    def events_by_tag(journal: Journal, tag: str, offset: int = 0, live: bool = False) -> Source[Dict[str, Any]]: ...
    @staticmethod
    def actor(
        props: Callable[[], Actor],
        *,
        mailbox: Union[None, int, Mailbox] = None,
        name: Optional[str] = None,
        supervision: Union[None, str, SupervisionRules] = None,
        dead_letters: Optional[DeadLetters] = None,
        throughput: Optional[int] = None,
        max_actors: Optional[int] = None,
        stash_capacity: Optional[int] = None,
        checkpointed: bool = False,
        handler_time_limit: Optional[float] = None,
        mailbox_budget: Optional[int] = None,
        pool: Any = None,
    ) -> Source[Any]: ...
    @staticmethod
    def from_iter(iterable: Union[Iterable[_T], Callable[[], Iterable[_T]]]) -> Source[_T]: ...
    @staticmethod
    def range(start: int, stop: Optional[int] = None, step: int = 1) -> Source[int]: ...
    @staticmethod
    def single(x: _T) -> Source[_T]: ...
    @staticmethod
    def empty() -> Source[Never]: ...
    @staticmethod
    def repeat(x: _T) -> Source[_T]: ...
    @staticmethod
    def unfold(state: _S, fn: Callable[[_S], Optional[Tuple[_S, _T]]]) -> Source[_T]: ...
    @staticmethod
    def failed(error: BaseException) -> Source[Never]: ...
    @staticmethod
    def maybe() -> Source[Any]: ...
    @staticmethod
    def never() -> Source[Never]: ...
    @staticmethod
    def lazy(factory: Callable[[], Source[_T]]) -> Source[_T]: ...
    @staticmethod
    def tick(initial_delay: float, interval: float, value: _T) -> Source[_T]: ...
    @staticmethod
    def queue(capacity: int, overflow: Overflow = "backpressure") -> Source[Any]: ...
    @staticmethod
    def from_async_iter(aiterable: Union[AsyncIterable[_T], Callable[[], AsyncIterable[_T]]]) -> Source[_T]: ...
    @overload
    @staticmethod
    def from_arrow(data: Any, *, rows: Literal[False] = False) -> Source[Any]: ...
    @overload
    @staticmethod
    def from_arrow(data: Any, *, rows: Literal[True]) -> Source[Dict[str, Any]]: ...
    @overload
    @staticmethod
    def from_pandas(df: Any, *, rows: Literal[False] = False) -> Source[Any]: ...
    @overload
    @staticmethod
    def from_pandas(df: Any, *, rows: Literal[True]) -> Source[Dict[str, Any]]: ...
    @overload
    @staticmethod
    def from_polars(df: Any, *, rows: Literal[False] = False) -> Source[Any]: ...
    @overload
    @staticmethod
    def from_polars(df: Any, *, rows: Literal[True]) -> Source[Dict[str, Any]]: ...
    @staticmethod
    def from_lines(
        path: _StrPath,
        *,
        block_size: Optional[int] = None,
        max_line: Optional[int] = None,
        follow: Optional[float] = None,
        share: Optional[Tuple[int, int]] = None,
    ) -> Source[str]: ...
    @staticmethod
    def from_parquet(
        path: _StrPath,
        *,
        columns: Optional[Sequence[str]] = None,
        batch_rows: Optional[int] = None,
        rows: bool = False,
        follow: Optional[float] = None,
        share: Optional[Tuple[int, int]] = None,
    ) -> Source[Any]: ...
    @staticmethod
    def from_arrow_ipc(
        path: _StrPath,
        *,
        columns: Optional[Sequence[str]] = None,
        batch_rows: Optional[int] = None,
        rows: bool = False,
        follow: Optional[float] = None,
        share: Optional[Tuple[int, int]] = None,
    ) -> Source[Any]: ...
    @overload
    @staticmethod
    def from_csv(
        path: _StrPath,
        *,
        delimiter: str = ",",
        header: bool = False,
        decode: None = None,
        block_size: Optional[int] = None,
        max_line: Optional[int] = None,
        follow: Optional[float] = None,
        share: Optional[Tuple[int, int]] = None,
    ) -> Source[Tuple[str, ...]]: ...
    @overload
    @staticmethod
    def from_csv(
        path: _StrPath,
        *,
        delimiter: str = ",",
        header: bool = False,
        decode: Callable[[Tuple[str, ...]], _T],
        block_size: Optional[int] = None,
        max_line: Optional[int] = None,
        follow: Optional[float] = None,
        share: Optional[Tuple[int, int]] = None,
    ) -> Source[_T]: ...
    @overload
    @staticmethod
    def from_csv(
        path: _StrPath,
        *,
        delimiter: str = ",",
        header: bool = False,
        decode: Sequence[type],
        block_size: Optional[int] = None,
        max_line: Optional[int] = None,
        follow: Optional[float] = None,
        share: Optional[Tuple[int, int]] = None,
    ) -> Source[Tuple[Any, ...]]: ...
    @overload
    @staticmethod
    def from_json_lines(
        path: _StrPath,
        *,
        raw: Literal[False] = False,
        block_size: Optional[int] = None,
        max_line: Optional[int] = None,
        follow: Optional[float] = None,
        share: Optional[Tuple[int, int]] = None,
    ) -> Source[Any]: ...
    @overload
    @staticmethod
    def from_json_lines(
        path: _StrPath,
        *,
        raw: Literal[True],
        block_size: Optional[int] = None,
        max_line: Optional[int] = None,
        follow: Optional[float] = None,
        share: Optional[Tuple[int, int]] = None,
    ) -> Source[str]: ...
    @overload
    def to(self, sink: Sink[_T_co, _M], keep: Literal["right"]) -> RunnableGraph[_M]: ...
    @overload
    def to(self, sink: Sink[_T_co, _M], keep: Literal["both"]) -> RunnableGraph[Tuple[Any, _M]]: ...
    @overload
    def to(self, sink: Sink[_T_co, Any], keep: Literal["none"]) -> RunnableGraph[None]: ...
    @overload
    def to(self, sink: Sink[_T_co, Any], keep: Literal["left"] = "left") -> RunnableGraph[Any]: ...
    def run_with(
        self,
        sink: Sink[_T_co, _M],
        *,
        batch_size: Optional[int] = None,
        progress: Union[bool, int, None] = None,
        parallelism: Optional[int] = None,
        state_dir: Optional[_StrPath] = None,
        checkpoint_interval: Optional[float] = None,
        retain: Optional[int] = None,
        restore_from: Optional[_StrPath] = None,
        allow_unmatched: bool = False,
        cluster: Optional[ClusterNode] = None,
    ) -> _M: ...
    async def run_with_async(
        self,
        sink: Sink[_T_co, _M],
        *,
        batch_size: Optional[int] = None,
        parallelism: Optional[int] = None,
        state_dir: Optional[_StrPath] = None,
        checkpoint_interval: Optional[float] = None,
        retain: Optional[int] = None,
        restore_from: Optional[_StrPath] = None,
        allow_unmatched: bool = False,
        cluster: Optional[ClusterNode] = None,
    ) -> _M: ...
    def via(self, flow: Flow[_T_co, _U], keep: Keep = "left") -> Source[_U]: ...
    def map(
        self,
        fn: Callable[[_T_co], _U],
        *,
        pool: _Pool = None,
        ordered: bool = True,
        name: Optional[str] = None,
        supervision: Optional[SupervisionRules] = None,
        default: Directive = "stop",
        dead_letters: Optional[DeadLetters] = None,
        timeout: Optional[float] = None,
    ) -> Source[_U]: ...
    def filter(
        self,
        pred: Callable[[_T_co], object],
        *,
        pool: _Pool = None,
        ordered: bool = True,
        name: Optional[str] = None,
        supervision: Optional[SupervisionRules] = None,
        default: Directive = "stop",
        dead_letters: Optional[DeadLetters] = None,
        timeout: Optional[float] = None,
    ) -> Self: ...
    def flat_map(
        self,
        fn: Callable[[_T_co], Iterable[_U]],
        *,
        pool: _Pool = None,
        ordered: bool = True,
        name: Optional[str] = None,
        supervision: Optional[SupervisionRules] = None,
        default: Directive = "stop",
        dead_letters: Optional[DeadLetters] = None,
        timeout: Optional[float] = None,
    ) -> Source[_U]: ...
    def for_each(
        self,
        fn: Callable[[_T_co], object],
        *,
        pool: _Pool = None,
        ordered: bool = True,
        name: Optional[str] = None,
        supervision: Optional[SupervisionRules] = None,
        default: Directive = "stop",
        dead_letters: Optional[DeadLetters] = None,
        timeout: Optional[float] = None,
    ) -> RunnableGraph[None]: ...
    @overload
    def map_batches(
        self,
        fn: Callable[[List[_T_co]], Iterable[_U]],
        *,
        batch_format: None = None,
        pool: _Pool = None,
        ordered: bool = True,
        name: Optional[str] = None,
        supervision: Optional[SupervisionRules] = None,
        default: Directive = "stop",
        dead_letters: Optional[DeadLetters] = None,
        timeout: Optional[float] = None,
    ) -> Source[_U]: ...
    @overload
    def map_batches(
        self,
        fn: Callable[[Any], Any],
        *,
        batch_format: BatchFormat,
        pool: _Pool = None,
        ordered: bool = True,
        name: Optional[str] = None,
        supervision: Optional[SupervisionRules] = None,
        default: Directive = "stop",
        dead_letters: Optional[DeadLetters] = None,
        timeout: Optional[float] = None,
    ) -> Source[Any]: ...
    def map_async(
        self,
        fn: Callable[[_T_co], Awaitable[_U]],
        parallelism: int = 4,
        *,
        name: Optional[str] = None,
        supervision: Optional[SupervisionRules] = None,
        default: Directive = "stop",
        dead_letters: Optional[DeadLetters] = None,
        timeout: Optional[float] = None,
    ) -> Source[_U]: ...
    def scan(self, zero: _A, fn: Callable[[_A, _T_co], _A], *, name: Optional[str] = None) -> Source[_A]: ...
    def fold(self, zero: _A, fn: Callable[[_A, _T_co], _A], *, name: Optional[str] = None) -> Source[_A]: ...
    def reduce(self: Source[_U], fn: Callable[[_U, _U], _U], *, name: Optional[str] = None) -> Source[_U]: ...
    def grouped(self, n: int) -> Source[List[_T_co]]: ...
    def take(self, n: int) -> Self: ...
    def limit(self, n: int) -> Self: ...
    def drop(self, n: int) -> Self: ...
    def throttle(self, elements: int, per: float, burst: int = 0, mode: ThrottleMode = "shaping") -> Self: ...
    def buffer(self, size: int, strategy: Overflow = "backpressure") -> Self: ...
    def merge(self, other: Source[_U]) -> Source[Union[_T_co, _U]]: ...
    def concat(self, other: Source[_U]) -> Source[Union[_T_co, _U]]: ...
    def zip(self, other: Source[_U]) -> Source[Tuple[_T_co, _U]]: ...
    def zip_with(
        self,
        other: Source[_U],
        fn: Callable[[_T_co, _U], _V],
        *,
        supervision: Optional[SupervisionRules] = None,
        default: Directive = "stop",
    ) -> Source[_V]: ...
    def filter_map(
        self,
        fn: Callable[[_T_co], Optional[_U]],
        *,
        name: Optional[str] = None,
        supervision: Optional[SupervisionRules] = None,
        default: Directive = "stop",
        dead_letters: Optional[DeadLetters] = None,
    ) -> Source[_U]: ...
    def take_while(
        self,
        pred: Callable[[_T_co], object],
        *,
        inclusive: bool = False,
        supervision: Optional[SupervisionRules] = None,
        default: Directive = "stop",
        dead_letters: Optional[DeadLetters] = None,
    ) -> Self: ...
    def drop_while(self, pred: Callable[[_T_co], object]) -> Self: ...
    def sliding(self, n: int, step: int = 1) -> Source[List[_T_co]]: ...
    @overload
    def intersperse(self, sep: _U) -> Source[Union[_T_co, _U]]: ...
    @overload
    def intersperse(self, sep: _U, start: _V, end: _V) -> Source[Union[_T_co, _U, _V]]: ...
    def zip_with_index(self) -> Source[Tuple[_T_co, int]]: ...
    def inspect(
        self,
        fn: Callable[[_T_co], object],
        *,
        on_complete: Optional[Callable[[], object]] = None,
        name: Optional[str] = None,
    ) -> Self: ...
    def log(self, name: str, level: Union[int, str] = 10, *, logger: Optional[logging.Logger] = None) -> Self: ...
    def watch_termination(self, keep: Keep = "right") -> Self: ...
    def recover(self, fn: Callable[[BaseException], Optional[_U]]) -> Source[Union[_T_co, _U]]: ...
    def recover_with_retries(
        self, attempts: int, fn: Callable[[BaseException], Union[Source[_U], Iterable[_U], None]]
    ) -> Source[Union[_T_co, _U]]: ...
    def map_async_unordered(
        self,
        fn: Callable[[_T_co], Awaitable[_U]],
        parallelism: int = 4,
        *,
        name: Optional[str] = None,
        supervision: Optional[SupervisionRules] = None,
        default: Directive = "stop",
        dead_letters: Optional[DeadLetters] = None,
    ) -> Source[_U]: ...
    def grouped_within(self, n: int, within: float) -> Source[List[_T_co]]: ...
    def batch(self, max: int, seed: Callable[[_T_co], _A], aggregate: Callable[[_A, _T_co], _A]) -> Source[_A]: ...
    @overload
    def conflate(self, aggregate: Callable[[_A, _T_co], _A], seed: Callable[[_T_co], _A]) -> Source[_A]: ...
    @overload
    def conflate(self: Source[_U], aggregate: Callable[[_U, _U], _U], seed: None = None) -> Source[_U]: ...
    @overload
    def expand(self, extrapolate: None = None) -> Self: ...
    @overload
    def expand(self, extrapolate: Callable[[_T_co], Iterable[_U]]) -> Source[_U]: ...
    def delay(self, seconds: float, capacity: int = 0) -> Self: ...
    def idle_timeout(self, seconds: float) -> Self: ...
    def completion_timeout(self, seconds: float) -> Self: ...
    def initial_timeout(self, seconds: float) -> Self: ...
    def keep_alive(self, seconds: float, element: _U) -> Source[Union[_T_co, _U]]: ...
    def initial_delay(self, seconds: float) -> Self: ...
    def flat_map_concat(self, fn: Callable[[_T_co], Union[Source[_U], Iterable[_U]]]) -> Source[_U]: ...
    def flat_map_merge(self, breadth: int, fn: Callable[[_T_co], Union[Source[_U], Iterable[_U]]]) -> Source[_U]: ...
    @overload
    def group_by(
        self, max_substreams: int, key: Optional[Callable[[_T_co], object]] = None, flow: None = None
    ) -> SubFlows[Source[Any], _T_co]: ...
    @overload
    def group_by(self, max_substreams: int, key: Optional[Callable[[_T_co], object]], flow: Flow[_T_co, _U]) -> Source[_U]: ...
    @overload
    def group_by(
        self, max_substreams: int, key: Optional[Callable[[_T_co], object]] = None, *, flow: Flow[_T_co, _U]
    ) -> Source[_U]: ...
    @overload
    def split_when(self, pred: Callable[[_T_co], object], flow: None = None) -> SubFlows[Source[Any], _T_co]: ...
    @overload
    def split_when(self, pred: Callable[[_T_co], object], flow: Flow[_T_co, _U]) -> Source[_U]: ...
    @overload
    def split_after(self, pred: Callable[[_T_co], object], flow: None = None) -> SubFlows[Source[Any], _T_co]: ...
    @overload
    def split_after(self, pred: Callable[[_T_co], object], flow: Flow[_T_co, _U]) -> Source[_U]: ...
    def also_to(self, sink: Sink[_T_co, Any], keep: Keep = "left") -> Self: ...
    def wire_tap(self, sink: Sink[_T_co, Any], keep: Keep = "left") -> Self: ...
    def divert_to(self, sink: Sink[_T_co, Any], pred: Callable[[_T_co], object], keep: Keep = "left") -> Self: ...
    def merge_sorted(self, other: Source[_U]) -> Source[Union[_T_co, _U]]: ...
    def interleave(self, other: Source[_U], segment_size: int = 1) -> Source[Union[_T_co, _U]]: ...
    def zip_latest(self, other: Source[_U]) -> Source[Tuple[_T_co, _U]]: ...
    def rows(self) -> Source[Dict[str, Any]]: ...
    @overload
    def key_by(
        self,
        key: None = None,
        *,
        supervision: Optional[SupervisionRules] = None,
        default: Directive = "stop",
        dead_letters: Optional[DeadLetters] = None,
        key_codec: _KeyCodec = "builtin",
    ) -> Keyed[Source[Any], _T_co, _T_co]: ...
    @overload
    def key_by(
        self,
        key: Callable[[_T_co], _K],
        *,
        supervision: Optional[SupervisionRules] = None,
        default: Directive = "stop",
        dead_letters: Optional[DeadLetters] = None,
        key_codec: _KeyCodec = "builtin",
    ) -> Keyed[Source[Any], _K, _T_co]: ...
    @overload
    def key_by(
        self,
        key: Union[str, int],
        *,
        supervision: Optional[SupervisionRules] = None,
        default: Directive = "stop",
        dead_letters: Optional[DeadLetters] = None,
        key_codec: _KeyCodec = "builtin",
    ) -> Keyed[Source[Any], Any, _T_co]: ...
    def join_by(
        self,
        other: Source[Any],
        key: Union[None, str, int, Callable[[Any], Any]] = None,
        other_key: Union[None, str, int, Callable[[Any], Any]] = None,
        *,
        supervision: Optional[SupervisionRules] = None,
        default: Directive = "stop",
        dead_letters: Optional[DeadLetters] = None,
        key_codec: _KeyCodec = "builtin",
    ) -> JoinBy: ...
    def assign_timestamps(
        self, ts: Callable[[_T_co], float], watermarks: Watermarks, *, idleness: Optional[float] = None
    ) -> Self: ...
    def ask(self, actor: ActorRef, parallelism: int = 1, timeout: float = 5.0) -> Source[Any]: ...
    def kill_switch(self) -> Self: ...

class Flow(_Linear, Generic[_In_contra, _Out_co]):
    """A blueprint with one input of ``In`` and one output of ``Out``."""

    @staticmethod
    def create() -> Flow[Any, Any]: ...
    @staticmethod
    def sharded(
        factory: Callable[[str], Actor],
        entity_id: Callable[[Any], Any],
        *,
        mailbox: int = 1024,
        passivate_after: Optional[float] = None,
        parallelism: int = 1,
        shard_buffer: int = 256,
    ) -> Flow[Any, Any]: ...
    @staticmethod
    def event_sourced(
        entity: Union[EventSourcedEntity, Callable[[], EventSourcedEntity]],
        journal: Journal,
        *,
        position: Optional[Callable[[Any], Optional[int]]] = None,
        snapshot_every: Optional[int] = None,
        parallelism: int = 1,
        max_entities: Optional[int] = None,
    ) -> Flow[Any, Any]: ...
    @staticmethod
    def actor(
        props: Callable[[], Actor],
        *,
        mailbox: Union[None, int, Mailbox] = None,
        name: Optional[str] = None,
        supervision: Union[None, str, SupervisionRules] = None,
        dead_letters: Optional[DeadLetters] = None,
        throughput: Optional[int] = None,
        max_actors: Optional[int] = None,
        stash_capacity: Optional[int] = None,
        checkpointed: bool = False,
        handler_time_limit: Optional[float] = None,
        mailbox_budget: Optional[int] = None,
        pool: Any = None,
    ) -> Flow[Any, Any]: ...
    @overload
    def to(self, sink: Sink[_Out_co, _M], keep: Literal["right"]) -> Sink[_In_contra, _M]: ...
    @overload
    def to(self, sink: Sink[_Out_co, _M], keep: Literal["both"]) -> Sink[_In_contra, Tuple[Any, _M]]: ...
    @overload
    def to(self, sink: Sink[_Out_co, Any], keep: Literal["none"]) -> Sink[_In_contra, None]: ...
    @overload
    def to(self, sink: Sink[_Out_co, Any], keep: Literal["left"] = "left") -> Sink[_In_contra, Any]: ...
    def via(self, flow: Flow[_Out_co, _U], keep: Keep = "left") -> Flow[_In_contra, _U]: ...
    def map(
        self,
        fn: Callable[[_Out_co], _U],
        *,
        pool: _Pool = None,
        ordered: bool = True,
        name: Optional[str] = None,
        supervision: Optional[SupervisionRules] = None,
        default: Directive = "stop",
        dead_letters: Optional[DeadLetters] = None,
        timeout: Optional[float] = None,
    ) -> Flow[_In_contra, _U]: ...
    def filter(
        self,
        pred: Callable[[_Out_co], object],
        *,
        pool: _Pool = None,
        ordered: bool = True,
        name: Optional[str] = None,
        supervision: Optional[SupervisionRules] = None,
        default: Directive = "stop",
        dead_letters: Optional[DeadLetters] = None,
        timeout: Optional[float] = None,
    ) -> Self: ...
    def flat_map(
        self,
        fn: Callable[[_Out_co], Iterable[_U]],
        *,
        pool: _Pool = None,
        ordered: bool = True,
        name: Optional[str] = None,
        supervision: Optional[SupervisionRules] = None,
        default: Directive = "stop",
        dead_letters: Optional[DeadLetters] = None,
        timeout: Optional[float] = None,
    ) -> Flow[_In_contra, _U]: ...
    def for_each(
        self,
        fn: Callable[[_Out_co], object],
        *,
        pool: _Pool = None,
        ordered: bool = True,
        name: Optional[str] = None,
        supervision: Optional[SupervisionRules] = None,
        default: Directive = "stop",
        dead_letters: Optional[DeadLetters] = None,
        timeout: Optional[float] = None,
    ) -> Sink[_In_contra, None]: ...
    @overload
    def map_batches(
        self,
        fn: Callable[[List[_Out_co]], Iterable[_U]],
        *,
        batch_format: None = None,
        pool: _Pool = None,
        ordered: bool = True,
        name: Optional[str] = None,
        supervision: Optional[SupervisionRules] = None,
        default: Directive = "stop",
        dead_letters: Optional[DeadLetters] = None,
        timeout: Optional[float] = None,
    ) -> Flow[_In_contra, _U]: ...
    @overload
    def map_batches(
        self,
        fn: Callable[[Any], Any],
        *,
        batch_format: BatchFormat,
        pool: _Pool = None,
        ordered: bool = True,
        name: Optional[str] = None,
        supervision: Optional[SupervisionRules] = None,
        default: Directive = "stop",
        dead_letters: Optional[DeadLetters] = None,
        timeout: Optional[float] = None,
    ) -> Flow[_In_contra, Any]: ...
    def map_async(
        self,
        fn: Callable[[_Out_co], Awaitable[_U]],
        parallelism: int = 4,
        *,
        name: Optional[str] = None,
        supervision: Optional[SupervisionRules] = None,
        default: Directive = "stop",
        dead_letters: Optional[DeadLetters] = None,
        timeout: Optional[float] = None,
    ) -> Flow[_In_contra, _U]: ...
    def scan(self, zero: _A, fn: Callable[[_A, _Out_co], _A], *, name: Optional[str] = None) -> Flow[_In_contra, _A]: ...
    def fold(self, zero: _A, fn: Callable[[_A, _Out_co], _A], *, name: Optional[str] = None) -> Flow[_In_contra, _A]: ...
    def reduce(self: Flow[_In_contra, _U], fn: Callable[[_U, _U], _U], *, name: Optional[str] = None) -> Flow[_In_contra, _U]: ...
    def grouped(self, n: int) -> Flow[_In_contra, List[_Out_co]]: ...
    def take(self, n: int) -> Self: ...
    def limit(self, n: int) -> Self: ...
    def drop(self, n: int) -> Self: ...
    def throttle(self, elements: int, per: float, burst: int = 0, mode: ThrottleMode = "shaping") -> Self: ...
    def buffer(self, size: int, strategy: Overflow = "backpressure") -> Self: ...
    def merge(self, other: Source[_U]) -> Flow[_In_contra, Union[_Out_co, _U]]: ...
    def concat(self, other: Source[_U]) -> Flow[_In_contra, Union[_Out_co, _U]]: ...
    def zip(self, other: Source[_U]) -> Flow[_In_contra, Tuple[_Out_co, _U]]: ...
    def zip_with(
        self,
        other: Source[_U],
        fn: Callable[[_Out_co, _U], _V],
        *,
        supervision: Optional[SupervisionRules] = None,
        default: Directive = "stop",
    ) -> Flow[_In_contra, _V]: ...
    def filter_map(
        self,
        fn: Callable[[_Out_co], Optional[_U]],
        *,
        name: Optional[str] = None,
        supervision: Optional[SupervisionRules] = None,
        default: Directive = "stop",
        dead_letters: Optional[DeadLetters] = None,
    ) -> Flow[_In_contra, _U]: ...
    def take_while(
        self,
        pred: Callable[[_Out_co], object],
        *,
        inclusive: bool = False,
        supervision: Optional[SupervisionRules] = None,
        default: Directive = "stop",
        dead_letters: Optional[DeadLetters] = None,
    ) -> Self: ...
    def drop_while(self, pred: Callable[[_Out_co], object]) -> Self: ...
    def sliding(self, n: int, step: int = 1) -> Flow[_In_contra, List[_Out_co]]: ...
    @overload
    def intersperse(self, sep: _U) -> Flow[_In_contra, Union[_Out_co, _U]]: ...
    @overload
    def intersperse(self, sep: _U, start: _V, end: _V) -> Flow[_In_contra, Union[_Out_co, _U, _V]]: ...
    def zip_with_index(self) -> Flow[_In_contra, Tuple[_Out_co, int]]: ...
    def inspect(
        self,
        fn: Callable[[_Out_co], object],
        *,
        on_complete: Optional[Callable[[], object]] = None,
        name: Optional[str] = None,
    ) -> Self: ...
    def log(self, name: str, level: Union[int, str] = 10, *, logger: Optional[logging.Logger] = None) -> Self: ...
    def watch_termination(self, keep: Keep = "right") -> Self: ...
    def recover(self, fn: Callable[[BaseException], Optional[_U]]) -> Flow[_In_contra, Union[_Out_co, _U]]: ...
    def recover_with_retries(
        self, attempts: int, fn: Callable[[BaseException], Union[Source[_U], Iterable[_U], None]]
    ) -> Flow[_In_contra, Union[_Out_co, _U]]: ...
    def map_async_unordered(
        self,
        fn: Callable[[_Out_co], Awaitable[_U]],
        parallelism: int = 4,
        *,
        name: Optional[str] = None,
        supervision: Optional[SupervisionRules] = None,
        default: Directive = "stop",
        dead_letters: Optional[DeadLetters] = None,
    ) -> Flow[_In_contra, _U]: ...
    def grouped_within(self, n: int, within: float) -> Flow[_In_contra, List[_Out_co]]: ...
    def batch(self, max: int, seed: Callable[[_Out_co], _A], aggregate: Callable[[_A, _Out_co], _A]) -> Flow[_In_contra, _A]: ...
    @overload
    def conflate(self, aggregate: Callable[[_A, _Out_co], _A], seed: Callable[[_Out_co], _A]) -> Flow[_In_contra, _A]: ...
    @overload
    def conflate(self: Flow[_In_contra, _U], aggregate: Callable[[_U, _U], _U], seed: None = None) -> Flow[_In_contra, _U]: ...
    @overload
    def expand(self, extrapolate: None = None) -> Self: ...
    @overload
    def expand(self, extrapolate: Callable[[_Out_co], Iterable[_U]]) -> Flow[_In_contra, _U]: ...
    def delay(self, seconds: float, capacity: int = 0) -> Self: ...
    def idle_timeout(self, seconds: float) -> Self: ...
    def completion_timeout(self, seconds: float) -> Self: ...
    def initial_timeout(self, seconds: float) -> Self: ...
    def keep_alive(self, seconds: float, element: _U) -> Flow[_In_contra, Union[_Out_co, _U]]: ...
    def initial_delay(self, seconds: float) -> Self: ...
    def flat_map_concat(self, fn: Callable[[_Out_co], Union[Source[_U], Iterable[_U]]]) -> Flow[_In_contra, _U]: ...
    def flat_map_merge(self, breadth: int, fn: Callable[[_Out_co], Union[Source[_U], Iterable[_U]]]) -> Flow[_In_contra, _U]: ...
    @overload
    def group_by(
        self, max_substreams: int, key: Optional[Callable[[_Out_co], object]] = None, flow: None = None
    ) -> SubFlows[Flow[_In_contra, Any], _Out_co]: ...
    @overload
    def group_by(self, max_substreams: int, key: Optional[Callable[[_Out_co], object]], flow: Flow[_Out_co, _U]) -> Flow[_In_contra, _U]: ...
    @overload
    def group_by(
        self, max_substreams: int, key: Optional[Callable[[_Out_co], object]] = None, *, flow: Flow[_Out_co, _U]
    ) -> Flow[_In_contra, _U]: ...
    @overload
    def split_when(self, pred: Callable[[_Out_co], object], flow: None = None) -> SubFlows[Flow[_In_contra, Any], _Out_co]: ...
    @overload
    def split_when(self, pred: Callable[[_Out_co], object], flow: Flow[_Out_co, _U]) -> Flow[_In_contra, _U]: ...
    @overload
    def split_after(self, pred: Callable[[_Out_co], object], flow: None = None) -> SubFlows[Flow[_In_contra, Any], _Out_co]: ...
    @overload
    def split_after(self, pred: Callable[[_Out_co], object], flow: Flow[_Out_co, _U]) -> Flow[_In_contra, _U]: ...
    def also_to(self, sink: Sink[_Out_co, Any], keep: Keep = "left") -> Self: ...
    def wire_tap(self, sink: Sink[_Out_co, Any], keep: Keep = "left") -> Self: ...
    def divert_to(self, sink: Sink[_Out_co, Any], pred: Callable[[_Out_co], object], keep: Keep = "left") -> Self: ...
    def merge_sorted(self, other: Source[_U]) -> Flow[_In_contra, Union[_Out_co, _U]]: ...
    def interleave(self, other: Source[_U], segment_size: int = 1) -> Flow[_In_contra, Union[_Out_co, _U]]: ...
    def zip_latest(self, other: Source[_U]) -> Flow[_In_contra, Tuple[_Out_co, _U]]: ...
    def rows(self) -> Flow[_In_contra, Dict[str, Any]]: ...
    @overload
    def key_by(
        self,
        key: None = None,
        *,
        supervision: Optional[SupervisionRules] = None,
        default: Directive = "stop",
        dead_letters: Optional[DeadLetters] = None,
        key_codec: _KeyCodec = "builtin",
    ) -> Keyed[Flow[_In_contra, Any], _Out_co, _Out_co]: ...
    @overload
    def key_by(
        self,
        key: Callable[[_Out_co], _K],
        *,
        supervision: Optional[SupervisionRules] = None,
        default: Directive = "stop",
        dead_letters: Optional[DeadLetters] = None,
        key_codec: _KeyCodec = "builtin",
    ) -> Keyed[Flow[_In_contra, Any], _K, _Out_co]: ...
    @overload
    def key_by(
        self,
        key: Union[str, int],
        *,
        supervision: Optional[SupervisionRules] = None,
        default: Directive = "stop",
        dead_letters: Optional[DeadLetters] = None,
        key_codec: _KeyCodec = "builtin",
    ) -> Keyed[Flow[_In_contra, Any], Any, _Out_co]: ...
    def join_by(
        self,
        other: Source[Any],
        key: Union[None, str, int, Callable[[Any], Any]] = None,
        other_key: Union[None, str, int, Callable[[Any], Any]] = None,
        *,
        supervision: Optional[SupervisionRules] = None,
        default: Directive = "stop",
        dead_letters: Optional[DeadLetters] = None,
        key_codec: _KeyCodec = "builtin",
    ) -> JoinBy: ...
    def assign_timestamps(
        self, ts: Callable[[_Out_co], float], watermarks: Watermarks, *, idleness: Optional[float] = None
    ) -> Self: ...
    def ask(self, actor: ActorRef, parallelism: int = 1, timeout: float = 5.0) -> Flow[_In_contra, Any]: ...
    def kill_switch(self) -> Self: ...

class Sink(_Blueprint, Generic[_In_contra, _Mat_co]):
    """A blueprint with one input of ``In``; ``Mat`` is its result."""

    @staticmethod
    def to_tcp(addr: str, *, mode: str = "connect", framing: str = "lines", json: bool = False) -> Sink[Any, Any]: ...
    @staticmethod
    def stdout(*, json: bool = False) -> Sink[Any, None]: ...
    @staticmethod
    def actor(
        props: Callable[[], Actor],
        *,
        mailbox: Union[None, int, Mailbox] = None,
        name: Optional[str] = None,
        supervision: Union[None, str, SupervisionRules] = None,
        dead_letters: Optional[DeadLetters] = None,
        throughput: Optional[int] = None,
        max_actors: Optional[int] = None,
        stash_capacity: Optional[int] = None,
        checkpointed: bool = False,
        handler_time_limit: Optional[float] = None,
        mailbox_budget: Optional[int] = None,
        pool: Any = None,
    ) -> Sink[Any, ActorRef]: ...
    @staticmethod
    def collect() -> Sink[_T, List[_T]]: ...
    @staticmethod
    def fold(zero: _A, fn: Callable[[_A, _T], _A]) -> Sink[_T, _A]: ...
    @staticmethod
    def reduce(fn: Callable[[_T, _T], _T]) -> Sink[_T, _T]: ...
    @staticmethod
    def for_each(fn: Callable[[_T], object]) -> Sink[_T, None]: ...
    @staticmethod
    def for_each_async(fn: Callable[[_T], Awaitable[object]], parallelism: int = 4) -> Sink[_T, None]: ...
    @overload
    @staticmethod
    def to_files(
        directory: _StrPath,
        *,
        encode: Callable[[_T], Union[str, bytes]],
        max_part_bytes: Optional[int] = None,
        prefix: str = "part",
        suffix: str = "",
        max_part_age: Optional[float] = None,
    ) -> Sink[_T, List[str]]: ...
    @overload
    @staticmethod
    def to_files(
        directory: _StrPath,
        *,
        max_part_bytes: Optional[int] = None,
        prefix: str = "part",
        suffix: str = "",
        max_part_age: Optional[float] = None,
    ) -> Sink[object, List[str]]: ...
    @staticmethod
    def to_parquet(
        directory: _StrPath,
        *,
        compression: str = "snappy",
        row_group_rows: Optional[int] = None,
        max_part_bytes: Optional[int] = None,
        prefix: str = "part",
        suffix: str = ".parquet",
        max_part_age: Optional[float] = None,
    ) -> Sink[Any, List[str]]: ...
    @staticmethod
    def to_arrow_ipc(
        directory: _StrPath,
        *,
        max_part_bytes: Optional[int] = None,
        prefix: str = "part",
        suffix: str = ".arrow",
        max_part_age: Optional[float] = None,
    ) -> Sink[Any, List[str]]: ...
    @staticmethod
    def ignore() -> Sink[object, None]: ...
    @staticmethod
    def lazy(factory: Callable[[], Sink[_T, _M]]) -> Sink[_T, SinkFuture[_M]]: ...
    @staticmethod
    def head() -> Sink[_T, _T]: ...
    @staticmethod
    def head_option() -> Sink[_T, Optional[_T]]: ...
    @staticmethod
    def last() -> Sink[_T, _T]: ...
    @staticmethod
    def last_option() -> Sink[_T, Optional[_T]]: ...
    @staticmethod
    def queue(capacity: int = 16) -> Sink[_T, SinkQueue[_T]]: ...
    @staticmethod
    def to_arrow() -> Sink[Any, Any]: ...
    @staticmethod
    def to_polars() -> Sink[Any, Any]: ...
    @staticmethod
    def to_pandas() -> Sink[Any, Any]: ...

class RunnableGraph(_Blueprint, Generic[_Mat_co]):
    """A closed blueprint; ``run()`` returns its ``Mat``."""

    def run(
        self,
        *,
        batch_size: Optional[int] = None,
        progress: Union[bool, int, None] = None,
        parallelism: Optional[int] = None,
        state_dir: Optional[_StrPath] = None,
        checkpoint_interval: Optional[float] = None,
        retain: Optional[int] = None,
        restore_from: Optional[_StrPath] = None,
        allow_unmatched: bool = False,
        cluster: Optional[ClusterNode] = None,
    ) -> _Mat_co: ...
    async def run_async(
        self,
        *,
        batch_size: Optional[int] = None,
        parallelism: Optional[int] = None,
        state_dir: Optional[_StrPath] = None,
        checkpoint_interval: Optional[float] = None,
        retain: Optional[int] = None,
        restore_from: Optional[_StrPath] = None,
        allow_unmatched: bool = False,
        cluster: Optional[ClusterNode] = None,
    ) -> _Mat_co: ...
    def start(
        self,
        *,
        batch_size: Optional[int] = None,
        cancel_grace: Optional[float] = None,
        parallelism: Optional[int] = None,
        state_dir: Optional[_StrPath] = None,
        checkpoint_interval: Optional[float] = None,
        retain: Optional[int] = None,
        restore_from: Optional[_StrPath] = None,
        allow_unmatched: bool = False,
        cluster: Optional[ClusterNode] = None,
    ) -> RunHandle[_Mat_co]: ...

class _Junction:
    kind: str
    n: int
    def __init__(self, n: int = 2) -> None: ...

class Broadcast(_Junction):
    eager_cancel: bool
    def __init__(self, n: int = 2, eager_cancel: bool = False) -> None: ...

class Balance(_Junction):
    eager_cancel: bool
    def __init__(self, n: int = 2, eager_cancel: bool = False) -> None: ...

class Merge(_Junction):
    eager_complete: bool
    def __init__(self, n: int = 2, eager_complete: bool = False) -> None: ...

class Concat(_Junction): ...

class Zip(_Junction):
    def __init__(self) -> None: ...

class ZipWith(_Junction):
    fn: Callable[[Any, Any], Any]
    def __init__(
        self,
        fn: Callable[[Any, Any], Any],
        *,
        supervision: Optional[SupervisionRules] = None,
        default: Directive = "stop",
    ) -> None: ...

class Partition(_Junction):
    fn: Callable[[Any], int]
    eager_cancel: bool
    def __init__(self, n: int, fn: Callable[[Any], int], eager_cancel: bool = False) -> None: ...

class MergePreferred(_Junction):
    eager_complete: bool
    def __init__(self, n: int = 1, eager_complete: bool = False) -> None: ...

class MergePrioritized(_Junction):
    priorities: List[int]
    eager_complete: bool
    def __init__(self, priorities: Sequence[int], eager_complete: bool = False) -> None: ...

class Interleave(_Junction):
    segment_size: int
    def __init__(self, n: int = 2, segment_size: int = 1) -> None: ...

class MergeSorted(_Junction):
    def __init__(self) -> None: ...

class ZipLatest(_Junction):
    def __init__(self) -> None: ...

class Unzip(_Junction):
    eager_cancel: bool
    def __init__(self, eager_cancel: bool = False) -> None: ...

class Ports:
    """The ports of a junction added to a :class:`GraphBuilder`."""

    inlets: List[Inlet]
    outlets: List[Outlet]
    def __init__(self, inlets: List[Inlet], outlets: List[Outlet]) -> None: ...
    @property
    def inlet(self) -> Inlet: ...
    @property
    def outlet(self) -> Outlet: ...

class GraphBuilder:
    """Wires sources, flows, sinks and junctions into non-linear graphs."""

    def __init__(self) -> None: ...
    def add_source(self, source: Source[Any]) -> Tuple[Outlet, MatKey]: ...
    def add_flow(self, flow: Flow[Any, Any]) -> Tuple[Inlet, Outlet, MatKey]: ...
    def add_sink(self, sink: Sink[Any, Any]) -> Tuple[Inlet, MatKey]: ...
    def add(self, junction: _Junction) -> Ports: ...
    def connect(self, outlet: Outlet, inlet: Inlet) -> None: ...
    def via(self, outlet: Outlet, flow: Flow[Any, Any]) -> Outlet: ...
    def build(self, *keys: MatKey) -> RunnableGraph[Any]: ...
    def build_source(self, outlet: Outlet, *keys: MatKey) -> Source[Any]: ...
    def build_flow(self, inlet: Inlet, outlet: Outlet, *keys: MatKey) -> Flow[Any, Any]: ...
    def build_sink(self, inlet: Inlet, *keys: MatKey) -> Sink[Any, Any]: ...

class KillSwitches:
    """Kill switches: stop a running stream from outside."""

    @staticmethod
    def single() -> Flow[Any, Any]: ...
