"""The Anthropic Messages API (`POST /v1/messages`, `/v1/messages/count_tokens`) over
the ChatService: wire types (`wire`), request translation (`translate`), the reply
and its stream (`render`), Anthropic's error shape (`errors`), the token estimate
(`tokens`), the naming of a core error's field (`origins`) and the routes
(`routes`)."""
