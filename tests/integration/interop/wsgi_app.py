"""Interop backend (tests/integration/test_interop.py): a tiny WSGI app served by gunicorn
(gthread worker, so keep-alive is on, with gunicorn's default `--keep-alive 2`)."""

BODY = b"hello from gunicorn\n"


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(BODY)))])
    return [BODY]
