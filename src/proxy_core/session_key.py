"""Session keys: which conversation a request belongs to.

Precedence: the `X-Session-Id` header, then an exact key a caller derived before (a
stored Responses API reply's own key), then the request's `user` field, then a hash
of the conversation's opening (system prompt + first user message). Each origin has
its own prefix, so a header value can never collide with an automatic key.

A key may live in a namespace (e.g. one per API key): `ns:<namespace>:` goes in front
of it, so the same header, user or opening under two namespaces is two conversations.
The empty namespace adds nothing, and is the one every caller shares.
"""

from __future__ import annotations

import enum
import hashlib
import re

import msgspec

from proxy_core.conversation import Base64Image, Conversation, ImagePart, Role, TextPart, UrlImage
from proxy_core.errors import invalid

MAX_KEY_LENGTH = 128
_SAFE = re.compile(r"^[A-Za-z0-9._:@+=/-]+$")
_NAMESPACE = re.compile(r"^[A-Za-z0-9_-]{0,64}$")


class KeyOrigin(enum.StrEnum):
    HEADER = "header"
    USER = "user"
    AUTO = "auto"


_PREFIX = {KeyOrigin.HEADER: "h:", KeyOrigin.USER: "u:", KeyOrigin.AUTO: "auto:"}


class SessionKey(msgspec.Struct, frozen=True):
    """A derived key: `value` is the full prefixed key used by the store, namespace
    included; `external` is what the caller is shown (the key within its namespace)."""

    value: str
    origin: KeyOrigin
    namespace: str = ""

    @property
    def external(self) -> str:
        return unnamespaced(self.namespace, self.value)


def namespace_prefix(namespace: str) -> str:
    """What the store keys of `namespace` start with ('' for the shared namespace).

    Raises ValueError for a namespace that is not 0-64 of `A-Za-z0-9_-` (a caller's
    bug: namespaces come from the server, never from a request).
    """
    if not _NAMESPACE.match(namespace):
        raise ValueError(f"invalid session namespace {namespace!r}")
    return f"ns:{namespace}:" if namespace else ""


def namespaced(namespace: str, key: str) -> str:
    """The store key of `key` (e.g. `h:abc`) within `namespace`."""
    return namespace_prefix(namespace) + key


def unnamespaced(namespace: str, key: str) -> str:
    """`key` (a store key of `namespace`) as its owner knows it: without the namespace."""
    return key[len(namespace_prefix(namespace)) :]


def derive_session_key(
    conversation: Conversation,
    *,
    header: str | None = None,
    user: str | None = None,
    namespace: str = "",
    exact: str | None = None,
) -> SessionKey:
    """Derive the session key for a request, within `namespace` (see `namespaced`).

    A header value must be 1-128 characters of `A-Za-z0-9._:@+=/-`, else it is
    refused (the client asked for that exact key). `exact` is a key derived before,
    as `SessionKey.external` shows it (`h:abc`, `auto:...`): it is taken as it is,
    within `namespace` (ValueError when it is no such key: it comes from the caller,
    never from a request). A `user` value outside those bounds is hashed instead,
    since OpenAI lets `user` be any string.
    """
    if header is not None:
        value = header.strip()
        if not is_header_value(value):
            raise invalid(
                f"Invalid X-Session-Id header: use 1-{MAX_KEY_LENGTH} characters of "
                "letters, digits and ._:@+=/-",
                "X-Session-Id",
            )
        return _key(namespace, _PREFIX[KeyOrigin.HEADER] + value, KeyOrigin.HEADER)
    if exact is not None:
        return _key(namespace, exact, origin_of(exact))
    if user is not None and user.strip():
        value = user.strip()
        if len(value) > MAX_KEY_LENGTH or not _SAFE.match(value):
            value = "#" + hashlib.sha256(user.encode("utf-8", "surrogatepass")).hexdigest()[:40]
        return _key(namespace, _PREFIX[KeyOrigin.USER] + value, KeyOrigin.USER)
    return _key(namespace, _PREFIX[KeyOrigin.AUTO] + opening_hash(conversation), KeyOrigin.AUTO)


def is_header_value(value: str) -> bool:
    """Whether `value` may be a session key's header value as it is: 1-128 characters
    of `A-Za-z0-9._:@+=/-` (what `X-Session-Id` must be)."""
    return 0 < len(value) <= MAX_KEY_LENGTH and _SAFE.match(value) is not None


def origin_of(key: str) -> KeyOrigin:
    """The origin of a key within its namespace, by its prefix; ValueError for a string
    that no derivation gives."""
    for origin, prefix in _PREFIX.items():
        if key.startswith(prefix) and len(key) > len(prefix):
            return origin
    raise ValueError(f"not a session key: {key!r}")


def _key(namespace: str, key: str, origin: KeyOrigin) -> SessionKey:
    return SessionKey(namespaced(namespace, key), origin, namespace)


def opening_hash(conversation: Conversation) -> str:
    """sha256 of the system prompt and the first user message (text, images, `name`).

    The name counts because it is rendered to the CLI: two openings that differ only
    in who speaks are two conversations.
    """
    digest = hashlib.sha256()
    _feed(digest, conversation.system or "")
    first_user = next((m for m in conversation.messages if m.role is Role.USER), None)
    if first_user is not None:
        for part in first_user.parts:
            if isinstance(part, TextPart):
                _feed(digest, "t" + part.text)
            elif isinstance(part.source, Base64Image):
                _feed(digest, "b" + part.source.media_type + ":" + part.source.data)
            else:
                assert isinstance(part, ImagePart)
                assert isinstance(part.source, UrlImage)
                _feed(digest, "u" + part.source.url)
        # Only a present name is fed, so the keys of unnamed openings stay as they were.
        if first_user.name is not None:
            _feed(digest, "n" + first_user.name)
    return digest.hexdigest()[:40]


def _feed(digest: hashlib._Hash, text: str) -> None:
    data = text.encode("utf-8", "surrogatepass")
    digest.update(len(data).to_bytes(8, "big"))
    digest.update(data)
