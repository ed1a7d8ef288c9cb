"""The OpenAI Responses API over the ChatService: `wire` (the request and the Response
object), `translate` (input items, tools and formats to the core's chat shapes),
`render` (the Response and its stream events), `stored` (what a stored response
keeps, for retrieval and `previous_response_id`) and `routes` (the handlers)."""
