"""proxy_core: the pure domain and application service of claude-max-api-proxy.

No I/O lives here: adapters implement the `Runner` and `SessionStore` ports and
callers (the HTTP adapter, embedding apps) use `ChatService`.
"""

from proxy_core.admission import Admission, ServiceLimits
from proxy_core.catalog import ModelCatalog, ModelEntry, ResolvedModel, model_not_found
from proxy_core.conversation import (
    Base64Image,
    Conversation,
    ImagePart,
    ImageSource,
    Message,
    ParseLimits,
    Part,
    Role,
    TextPart,
    ToolCall,
    UrlImage,
    parse_conversation,
)
from proxy_core.effort import REASONING_EFFORT_VALUES, Effort, parse_effort
from proxy_core.errors import NO_RESULT, ChatError, FailureReason, no_result
from proxy_core.events import (
    Event,
    Failed,
    Finished,
    ReplyCollector,
    TerminalEvent,
    TextDelta,
    TextRetracted,
    ThinkingDelta,
    ToolActivity,
    Usage,
)
from proxy_core.fakes import FakeRunner, InMemorySessionStore, echo_script
from proxy_core.ledger import SessionRecord, fingerprint, reply_fingerprint, system_hash
from proxy_core.planning import PlanKind, RestartReason, TurnPlan, plan_turn, restart_plan
from proxy_core.ports import (
    BackendDetails,
    BackendStatus,
    LiveDetails,
    LiveProcessInfo,
    Runner,
    SessionStore,
)
from proxy_core.rendering import Block, ImageBlock, TextBlock, parse_rendering, render_messages
from proxy_core.request import ChatRequest, Completion
from proxy_core.service import ChatService
from proxy_core.session_key import (
    KeyOrigin,
    SessionKey,
    derive_session_key,
    namespace_prefix,
    namespaced,
    unnamespaced,
)
from proxy_core.sessions import SessionReset, Sessions
from proxy_core.stats import ServiceStats
from proxy_core.stops import StopScanner, parse_stop
from proxy_core.structured import parse_response_format
from proxy_core.turn import Turn

__all__ = [
    "NO_RESULT",
    "REASONING_EFFORT_VALUES",
    "Admission",
    "BackendDetails",
    "BackendStatus",
    "Base64Image",
    "Block",
    "ChatError",
    "ChatRequest",
    "ChatService",
    "Completion",
    "Conversation",
    "Effort",
    "Event",
    "Failed",
    "FailureReason",
    "FakeRunner",
    "Finished",
    "ImageBlock",
    "ImagePart",
    "ImageSource",
    "InMemorySessionStore",
    "KeyOrigin",
    "LiveDetails",
    "LiveProcessInfo",
    "Message",
    "ModelCatalog",
    "ModelEntry",
    "ParseLimits",
    "Part",
    "PlanKind",
    "ReplyCollector",
    "ResolvedModel",
    "RestartReason",
    "Role",
    "Runner",
    "ServiceLimits",
    "ServiceStats",
    "SessionKey",
    "SessionRecord",
    "SessionReset",
    "SessionStore",
    "Sessions",
    "StopScanner",
    "TerminalEvent",
    "TextBlock",
    "TextDelta",
    "TextPart",
    "TextRetracted",
    "ThinkingDelta",
    "ToolActivity",
    "ToolCall",
    "Turn",
    "TurnPlan",
    "UrlImage",
    "Usage",
    "derive_session_key",
    "echo_script",
    "fingerprint",
    "model_not_found",
    "namespace_prefix",
    "namespaced",
    "no_result",
    "parse_conversation",
    "parse_effort",
    "parse_rendering",
    "parse_response_format",
    "parse_stop",
    "plan_turn",
    "render_messages",
    "reply_fingerprint",
    "restart_plan",
    "system_hash",
    "unnamespaced",
]
