"""The pages Warren answers with itself: HTML for browsers, JSON for API clients."""

import html
import json
from typing import NamedTuple

_TITLES = {
    400: "This address cannot be read safely",
    401: "Sign-in required",
    403: "Access denied",
    404: "Nothing is served here",
    408: "The request took too long to arrive",
    413: "The request is too large",
    429: "Too many requests",
    431: "The request's headers are too large",
    500: "Something went wrong",
    502: "The application is not answering",
    503: "The application is unavailable",
    504: "The application took too long",
}

_DETAILS = {
    400: "The request's path is ambiguous, so Warren refused it rather than guess what it means.",
    401: "You need to sign in before you can open this page.",
    403: "The rules for this application do not let this request through.",
    404: "This host name is not one of the applications behind this gateway.",
    408: "Warren waited for the rest of the request and closed the connection.",
    413: "The request's body is larger than this gateway accepts.",
    429: "You have made too many requests. Wait a little, then try again.",
    431: "The request carries more header fields, or longer ones, than this gateway accepts.",
    500: "Warren hit an error and stopped the request, so nothing was sent on.",
    502: "Warren could not reach the application. It may be restarting; try again shortly.",
    503: "No server for this application is available right now. Try again shortly.",
    504: "The application did not answer in time. Try again shortly.",
}


class Page(NamedTuple):
    status: int
    content_type: str
    body: bytes


def wants_html(accept: str | None) -> bool:
    return accept is not None and ("text/html" in accept or "application/xhtml" in accept)


def render(
    status: int, *, accept: str | None, detail: str | None = None, reference: str | None = None
) -> Page:
    title = _TITLES.get(status, "Request refused")
    text = detail or _DETAILS.get(status, "")
    if not wants_html(accept):
        payload: dict[str, object] = {"status": status, "error": title, "detail": text}
        if reference:
            payload["reference"] = reference
        return Page(status, "application/json", json.dumps(payload).encode())
    return Page(status, "text/html; charset=utf-8", _html(status, title, text, reference).encode())


_STYLE = """
:root{color-scheme:light dark;--bg:#f5f6f8;--card:#fff;--ink:#1b1f24;--muted:#4a525c;
--accent:#2456c7}
@media (prefers-color-scheme:dark){:root{--bg:#111418;--card:#1b2027;--ink:#eef1f4;
--muted:#b5bdc7;--accent:#8fb3ff}}
*{box-sizing:border-box}
body{margin:0;min-height:100vh;display:grid;place-items:center;background:var(--bg);color:var(--ink);
font:16px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
main{background:var(--card);max-width:34rem;margin:1.5rem;padding:2.25rem 2.5rem;border-radius:14px;
box-shadow:0 1px 2px rgba(0,0,0,.06),0 8px 28px rgba(0,0,0,.08)}
.code{font-weight:600;letter-spacing:.08em;color:var(--accent);margin:0 0 .25rem}
h1{font-size:1.45rem;line-height:1.25;margin:0 0 .75rem}
p{margin:0 0 1rem;color:var(--muted)}
.ref{font:13px ui-monospace,SFMono-Regular,Menlo,monospace;color:var(--muted);margin:1.5rem 0 0}
footer{margin-top:1.75rem;font-size:.85rem;color:var(--muted)}
"""


def _html(status: int, title: str, detail: str, reference: str | None) -> str:
    ref = f'<p class="ref">Reference: {html.escape(reference)}</p>' if reference else ""
    body = (
        f'<p class="code">Error {status}</p>\n<h1>{html.escape(title)}</h1>\n'
        f"<p>{html.escape(detail)}</p>{ref}"
    )
    return document(f"{status} · {title}", body)


def document(title: str, body: str, *, style: str = "") -> str:
    """A Warren page: `body` (trusted HTML) in the card every Warren page shares."""
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{html.escape(title)}</title>
<style>{_STYLE}{style}</style>
</head>
<body>
<main>
{body}
<footer>Protected by Warren</footer>
</main>
</body>
</html>
"""
