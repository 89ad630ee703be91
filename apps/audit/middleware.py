from .request_id import bind, request_id_for, unbind


class RequestIdMiddleware:
    """Take X-Request-ID when it is a safe token (else make one), keep it for audit entries, echo it back."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.request_id = request_id_for(request.headers.get("X-Request-ID"))
        token = bind(request.request_id)
        try:
            response = self.get_response(request)
        finally:
            unbind(token)
        response["X-Request-ID"] = request.request_id
        return response
