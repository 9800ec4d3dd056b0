"""The admin console's pages under /admin (docs/console.md). Every one of them is behind
authportal.console.access; what they change goes through authportal.manage, the code of the
`warren user`, `warren sessions`, `warren share` and `warren token` commands.

A change is a POST that answers 303 back to its page with what was done (`?done=CODE`, one of
a fixed set of sentences, so a link cannot put words on the page); a refused one answers 409
with the reason, and changes nothing.
"""

import asyncio
from collections.abc import Awaitable
from typing import Any

import typer
from aiohttp import web

import authportal.console.reading as reading
from authportal import manage
from authportal.console.access import PREFIX, admin
from authportal.console.render import page
from authportal.state import PORTAL, Portal
from core.policy.compiled import CompiledResource, Policy

routes = web.RouteTableDef()

type TargetOf = tuple[str, str | None, str]  # resource, site, URL: as core.balance.target_states

DONE = {
    "session": "The session was revoked: its next request is refused, on every node.",
    "user-sessions": "Every session of the user was revoked.",
    "disabled": "The user was disabled and their sessions revoked.",
    "enabled": "The user was enabled: they can sign in again.",
    "groups": "The groups were saved: gateways decide by them within a second.",
    "share": "The share link was revoked.",
    "token": "The token was revoked: its next request is refused, on every node.",
}
_NOT_PUSHED = (
    "users.yaml changed on this node only: the shared storage did not answer, so the other "
    "nodes did not get it (see the portal's log). Once it answers, run: warren users push"
)


def _portal(request: web.Request) -> Portal:
    return request.app[PORTAL]


def _notice(request: web.Request) -> str | None:
    return DONE.get(request.query.get("done", ""))


def _back(where: str, done: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(f"{PREFIX}/{where}?done={done}")


async def _field(request: web.Request, name: str) -> str:
    form = await request.post()
    return str(form.get(name, "")).strip()[:200]


@routes.get(PREFIX)
async def overview(request: web.Request) -> web.Response:
    portal = _portal(request)
    settings = portal.settings
    gateway, sidecar, nodes = await asyncio.gather(
        reading.gateway_status(settings),
        reading.sidecar_status(settings),
        reading.live_nodes(settings),
    )
    sites = (sidecar.reply.get("sites") or []) if sidecar.ok else []
    return page(
        request,
        "overview.html",
        {
            "who": admin(request).identity.subject,
            "gateway": gateway,
            "sidecar": sidecar,
            "sites_online": sum(1 for site in sites if site.get("online")),
            "sites_total": len(sites),
            "nodes": nodes,
            "portal_policy": portal.policy.status(),
        },
    )


@routes.get(PREFIX + "/sites")
async def sites(request: web.Request) -> web.Response:
    sidecar = await reading.sidecar_status(_portal(request).settings)
    return page(
        request, "sites.html", {"sidecar": sidecar, "sites": sidecar.reply.get("sites") or []}
    )


@routes.get(PREFIX + "/resources")
async def resources(request: web.Request) -> web.Response:
    portal = _portal(request)
    gateway = await reading.ask(portal.settings.control_path, "targets")
    states: dict[TargetOf, dict[str, Any]] = {
        (str(entry.get("resource")), entry.get("site"), str(entry.get("target"))): entry
        for entry in gateway.reply.get("targets") or []
        if isinstance(entry, dict)
    }
    return page(
        request,
        "resources.html",
        {
            "gateway": gateway,
            "policy": portal.policy.current,
            "global_rules": _rules(portal.policy.current),
            "listing": _resources(portal.policy.current, states),
        },
    )


def _rules(policy: Policy) -> list[tuple[str, dict[str, object]]]:
    return [(f"rules[{i}]", rule.conditions()) for i, rule in enumerate(policy.model.rules)]


def _resources(policy: Policy, states: dict[TargetOf, dict[str, Any]]) -> list[dict[str, Any]]:
    """Each resource as policy.yaml says it (the source of truth: the console never edits it),
    its targets with what the running gateway knows of them, its rules by key path (the
    `rule` of an access log line and of a refusal)."""
    listing = []
    for name, resource in sorted(policy.resources.items()):
        model = resource.model
        targets = []
        for target in model.every_target():
            url = f"{target.scheme}://{target.host}:{target.port}"
            state = states.get((name, target.site, url))
            targets.append({"url": url, "site": target.site, "state": state})
        listing.append(
            {
                "name": name,
                "where": ", ".join(model.host or ()) or f"{model.protocol} port {model.port}",
                "auth": _access(resource),
                "targets": targets,
                "checked": model.health is not None,
                "rules": [
                    (f"resources.{name}.rules[{i}]", rule.conditions())
                    for i, rule in enumerate(model.rules)
                ],
            }
        )
    return listing


def _access(resource: CompiledResource) -> str:
    if resource.public:
        return "public"
    auth = resource.auth
    who = [f"users {', '.join(auth.users)}" if auth and auth.users else ""]
    who.append(f"groups {', '.join(auth.groups)}" if auth and auth.groups else "")
    listed = "; ".join(part for part in who if part)
    return f"sign-in: {listed}" if listed else "sign-in: anyone signed in"


@routes.get(PREFIX + "/refusals")
async def refusals(request: web.Request) -> web.Response:
    found, problem = await reading.refusals(_portal(request).settings)
    return page(request, "refusals.html", {"refusals": found, "problem": problem})


@routes.get(PREFIX + "/sessions")
async def sessions(request: web.Request) -> web.Response:
    portal = _portal(request)
    records = await manage.active_sessions(portal.kv)
    return page(
        request,
        "sessions.html",
        {
            "sessions": records,
            "users": sorted({record.user for record in records}),
            "mine": admin(request).identity.session_id,
            "notice": _notice(request),
        },
    )


@routes.post(PREFIX + "/sessions/revoke")
async def revoke_session(request: web.Request) -> web.Response:
    session_id = await _field(request, "session")
    change = manage.revoke_session(_portal(request).kv, session_id, by=_by(request))
    return await _state_change(request, "sessions", "session", change)


@routes.post(PREFIX + "/sessions/revoke-user")
async def revoke_user(request: web.Request) -> web.Response:
    portal = _portal(request)
    user = await _field(request, "user")
    change = manage.revoke_sessions_of(portal.settings, portal.kv, user, by=_by(request))
    return await _state_change(request, "sessions", "user-sessions", change)


@routes.get(PREFIX + "/users")
async def users(request: web.Request) -> web.Response:
    portal = _portal(request)
    return page(
        request,
        "users.html",
        {
            "users": sorted(portal.users.current().users.items()),
            "group": portal.settings.admin.group,
            "me": admin(request).identity.subject,
            "notice": _notice(request),
            "problem": portal.users.last_error,
        },
    )


@routes.post(PREFIX + "/users/disable")
async def disable(request: web.Request) -> web.Response:
    portal = _portal(request)
    user = await _field(request, "user")
    if user == admin(request).identity.subject:
        return await _refused(request, "users", "You cannot disable yourself here.")
    return await _users_change(
        request, "disabled", manage.disable_user(portal.settings, portal.kv, user, by=_by(request))
    )


@routes.post(PREFIX + "/users/enable")
async def enable(request: web.Request) -> web.Response:
    settings = _portal(request).settings
    user = await _field(request, "user")
    return await _users_change(
        request, "enabled", asyncio.to_thread(manage.enable_user, settings, user, _by(request))
    )


@routes.post(PREFIX + "/users/groups")
async def groups(request: web.Request) -> web.Response:
    portal = _portal(request)
    user = await _field(request, "user")
    wanted = await _field(request, "groups")
    group = portal.settings.admin.group
    if user == admin(request).identity.subject and group not in manage.group_list(wanted):
        return await _refused(
            request,
            "users",
            f"You cannot take yourself out of {group} here: it would lock you out.",
        )
    change = asyncio.to_thread(
        manage.regroup, portal.settings, user, groups=wanted, by=_by(request)
    )
    return await _users_change(request, "groups", change)


async def _users_change(request: web.Request, done: str, change: Awaitable[object]) -> web.Response:
    try:
        await change
    except manage.Refused as refused:
        return await _refused(request, "users", str(refused))
    except typer.Exit:  # core.cluster.push said why in the log; the local change stands
        return await _refused(request, "users", _NOT_PUSHED)
    raise _back("users", done)


@routes.get(PREFIX + "/shares")
async def shares(request: web.Request) -> web.Response:
    records = await manage.active_shares(_portal(request).kv)
    return page(request, "shares.html", {"shares": records, "notice": _notice(request)})


@routes.post(PREFIX + "/shares/revoke")
async def revoke_share(request: web.Request) -> web.Response:
    link_id = await _field(request, "link")
    change = manage.revoke_share(_portal(request).kv, link_id, by=_by(request))
    return await _state_change(request, "shares", "share", change)


@routes.get(PREFIX + "/tokens")
async def tokens(request: web.Request) -> web.Response:
    records = await manage.active_tokens(_portal(request).kv)
    return page(request, "tokens.html", {"tokens": records, "notice": _notice(request)})


@routes.post(PREFIX + "/tokens/revoke")
async def revoke_token(request: web.Request) -> web.Response:
    token_id = await _field(request, "token")
    change = manage.revoke_token(_portal(request).kv, token_id, by=_by(request))
    return await _state_change(request, "tokens", "token", change)


async def _state_change(
    request: web.Request, where: str, done: str, change: Awaitable[object]
) -> web.Response:
    """A change to the sign-in state made, back to its page with what was done; or refused."""
    try:
        await change
    except manage.Refused as refused:
        return await _refused(request, where, str(refused))
    raise _back(where, done)


def _by(request: web.Request) -> str:
    """Who made a change, for its log event (authportal.manage)."""
    return f"console:{admin(request).identity.subject}"


async def _refused(request: web.Request, where: str, why: str) -> web.Response:
    """Why nothing changed, and the way back (409: the state of things did not allow it)."""
    return page(request, "refused.html", {"why": why, "back": f"{PREFIX}/{where}"}, status=409)
