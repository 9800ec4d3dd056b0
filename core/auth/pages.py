"""The sign-in pages: the portal's forms and the gateway's sign-out page, in the look of every
Warren page (`core.pages.document`). Plain HTML forms: no JavaScript needed, a label for every
field, errors announced (role=alert) and tied to their field, focus visible, contrast >= 4.5:1.
"""

from html import escape
from urllib.parse import urlencode

from core.pages import document

_STYLE = """
:root{--line:#8a93a0;--field:#fff;--on-accent:#fff;--error:#a1261d;--error-bg:#fdecea;--soft:#eef2fb}
@media (prefers-color-scheme:dark){:root{--line:#6f7884;--field:#12161b;--on-accent:#0b1220;
--error:#ffb4ab;--error-bg:#3a1d1b;--soft:#222a36}}
main{width:min(26rem,calc(100vw - 2rem));padding:2rem 2.25rem}
.brand{display:flex;align-items:center;gap:.55rem;margin:0 0 1.4rem;font-weight:700;
letter-spacing:.03em;color:var(--accent)}
.brand svg{width:1.6rem;height:1.6rem}
form{display:grid;gap:1rem;margin:1.25rem 0 0}
label{display:grid;gap:.35rem;font-weight:600;color:var(--ink)}
input{font:inherit;width:100%;padding:.65rem .75rem;border:1px solid var(--line);border-radius:8px;
background:var(--field);color:var(--ink)}
input[aria-invalid=true]{border-color:var(--error)}
button{font:inherit;font-weight:600;padding:.7rem 1rem;border:0;border-radius:8px;
background:var(--accent);color:var(--on-accent);cursor:pointer}
button.secondary{background:transparent;color:var(--accent);border:1px solid var(--accent)}
a.button{display:block;text-align:center;text-decoration:none;font-weight:600;padding:.7rem 1rem;
border-radius:8px;border:1px solid var(--accent);color:var(--accent)}
.ways{display:grid;gap:.6rem;margin:1.1rem 0 0}.ways p{margin:0}
a{color:var(--accent)}
:focus-visible{outline:3px solid var(--accent);outline-offset:2px}
.error{margin:0;padding:.65rem .85rem;border-left:4px solid var(--error);border-radius:6px;
background:var(--error-bg);color:var(--ink)}
.alt{margin-top:1.75rem;padding-top:1.25rem;border-top:1px solid var(--line)}
.who{background:var(--soft);border-radius:8px;padding:.75rem 1rem;color:var(--ink)}
.who dt{font-size:.85rem;color:var(--muted)}.who dd{margin:0 0 .4rem;font-weight:600}
ul.apps{list-style:none;padding:0;margin:.5rem 0 0;display:grid;gap:.4rem}
.small{font-size:.9rem}
form+p{margin-top:1.1rem}
"""

_LOGO = (
    '<svg viewBox="0 0 24 24" aria-hidden="true" focusable="false"><path fill="currentColor" '
    'd="M12 2 3 6v6c0 5 3.8 9.4 9 10 5.2-.6 9-5 9-10V6l-9-4Zm0 4a3 3 0 0 1 3 3v2h1v6H8v-6h1V9a3 '
    '3 0 0 1 3-3Zm0 2a1 1 0 0 0-1 1v2h2V9a1 1 0 0 0-1-1Z"/></svg>'
)


def page(title: str, body: str) -> str:
    brand = f'<p class="brand">{_LOGO}Warren</p>'
    return document(f"{title} · Warren", f"{brand}\n{body}", style=_STYLE)


def _error(message: str | None) -> str:
    if not message:
        return ""
    return f'<p class="error" role="alert" id="problem">{escape(message)}</p>'


def _invalid(message: str | None) -> str:
    return ' aria-invalid="true" aria-describedby="problem"' if message else ""


def _hidden(**fields: str | None) -> str:
    return "".join(
        f'<input type="hidden" name="{name}" value="{escape(value)}">'
        for name, value in fields.items()
        if value is not None
    )


def sign_in(
    *,
    csrf: str,
    rd: str | None,
    destination: str | None,
    error: str | None = None,
    username: str = "",
    secret_kind: str | None = None,  # "password" or "pin" when the resource has one
    entry_error: str | None = None,
    password_form: bool = True,
    extra: str = "",  # the other ways in (identity providers, passkeys, e-mail codes), as HTML
) -> str:
    lead = (
        f"<p>to continue to <strong>{escape(destination)}</strong></p>"
        if destination
        else "<p>with your Warren account</p>"
    )
    # Back with an error and the name kept: the password is what to type next.
    name_focus, password_focus = ("", " autofocus") if username else (" autofocus", "")
    form = f"""<form method="post" action="/sign-in">
{_error(error)}
{_hidden(csrf=csrf, rd=rd)}
<label for="username">Username
<input id="username" name="username" value="{escape(username)}" autocomplete="username"
 autocapitalize="none" spellcheck="false" required{name_focus}{_invalid(error)}></label>
<label for="password">Password
<input id="password" name="password" type="password" autocomplete="current-password"
 required{password_focus}{_invalid(error)}></label>
<button type="submit">Sign in</button>
</form>"""
    body = f"<h1>Sign in</h1>\n{lead}\n" + (form if password_form else _error(error)) + extra
    if secret_kind is not None:
        body += _secret_form(csrf, rd, destination, secret_kind, entry_error)
    return page("Sign in", body)


def _secret_form(
    csrf: str, rd: str | None, destination: str | None, kind: str, error: str | None
) -> str:
    word = "PIN" if kind == "pin" else "password"
    numeric = ' inputmode="numeric" pattern="[0-9]*"' if kind == "pin" else ""
    return f"""
<section class="alt" aria-labelledby="secret-title">
<h2 id="secret-title" class="small">No account? Enter the {word} of
{escape(destination or "this application")}</h2>
<form method="post" action="/password">
{_error(error).replace('id="problem"', 'id="secret-problem"')}
{_hidden(csrf=csrf, rd=rd)}
<label for="secret">Application {word}
<input id="secret" name="secret" type="password" autocomplete="off"{numeric}
 required{' aria-invalid="true" aria-describedby="secret-problem"' if error else ""}></label>
<button type="submit" class="secondary">Continue with the {word}</button>
</form>
</section>"""


def second_factor(
    *,
    csrf: str,
    rd: str | None,
    error: str | None = None,
    extra: str = "",  # another second factor (the passkey button), as HTML
    code: bool = True,  # the TOTP (or recovery) code form; False: the passkey is the only one
) -> str:
    restart = "/sign-in" + (f"?{urlencode({'rd': rd})}" if rd else "")
    if code:
        # No numeric pattern: a recovery code (xxxx-xxxx-xxxx) goes in the same field.
        asked = f"""<p>Enter the six-digit code your authenticator app shows for Warren.</p>
<form method="post" action="/sign-in/code">
{_error(error)}
{_hidden(csrf=csrf)}
<label for="code">Verification code
<input id="code" name="code" maxlength="20" autocapitalize="none" spellcheck="false"
 autocomplete="one-time-code" required autofocus{_invalid(error)}></label>
<button type="submit">Verify</button>
</form>
<p class="small">Lost your authenticator? A recovery code works here too, once each.</p>"""
    else:
        asked = f"""<p>Confirm it is you with your passkey.</p>
{_error(error)}
<noscript><p>The passkey needs JavaScript: turn it on, or start again and sign in another
way.</p></noscript>"""
    body = f"""<h1>Two-step verification</h1>
{asked}
{extra}
<p class="small"><a href="{escape(restart)}">Start again</a></p>"""
    return page("Two-step verification", body)


def signed_in(
    *,
    user: str,
    email: str | None,
    groups: tuple[str, ...],
    apps: list[tuple[str, str]],
    csrf: str,
    extra: str = "",  # what the parts add for an account (linked providers, passkeys), as HTML
) -> str:
    details = f"<dt>Signed in as</dt><dd>{escape(user)}</dd>"
    if email:
        details += f"<dt>E-mail</dt><dd>{escape(email)}</dd>"
    if groups:
        details += f"<dt>Groups</dt><dd>{escape(', '.join(groups))}</dd>"
    links = "".join(f'<li><a href="{escape(url)}">{escape(name)}</a></li>' for name, url in apps)
    listing = (
        f'<h2 class="small">Your applications</h2><ul class="apps">{links}</ul>' if apps else ""
    )
    body = f"""<h1>You are signed in</h1>
<dl class="who">{details}</dl>
{listing}
{extra}
<form method="post" action="/sign-out">{_hidden(csrf=csrf)}
<button type="submit" class="secondary">Sign out everywhere</button></form>"""
    return page("Signed in", body)


def confirm_sign_out(*, action: str, csrf: str | None) -> str:
    body = f"""<h1>Sign out?</h1>
<p>This ends your Warren session on every application at once.</p>
<form method="post" action="{escape(action)}">{_hidden(csrf=csrf)}
<button type="submit">Sign out</button></form>"""
    return page("Sign out", body)


def signed_out(*, sign_in_url: str) -> str:
    body = f"""<h1>You are signed out</h1>
<p>Your Warren session has ended on every application.</p>
<p><a href="{escape(sign_in_url)}">Sign in again</a></p>"""
    return page("Signed out", body)


def notice(title: str, text: str, *, link: tuple[str, str] | None = None) -> str:
    extra = f'<p><a href="{escape(link[1])}">{escape(link[0])}</a></p>' if link else ""
    return page(title, f"<h1>{escape(title)}</h1>\n<p>{escape(text)}</p>{extra}")
