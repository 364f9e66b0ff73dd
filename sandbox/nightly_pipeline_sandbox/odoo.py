"""Odoo 17 sandbox: JSON-RPC exactly as odoorpc 0.10.1 speaks it (vendor-apis.md §5).

``odoorpc.ODOO("127.0.0.1", port=server.port, protocol="jsonrpc")`` logs in, searches, creates,
writes and reads against in-memory databases (one :class:`OdooDatabase` each, own users and ids).

Routes: ``POST /web/webclient/version_info`` and ``POST /jsonrpc`` with the services ``common``
(``login``, ``authenticate``, ``version``), ``object`` (``execute``, ``execute_kw``; credentials
checked on every call) and ``db`` (``list``, ``db_exist``, ``server_version``; the master-password
methods answer AccessDenied). odoorpc ≥ Odoo 10 never calls ``/web/session/authenticate``, so the
sandbox does not serve it. Errors travel in Odoo's envelope (HTTP 200, ``error.data.message``).

Outages (:meth:`OdooServer.set_outage`):

* ``"http500"``: every JSON-RPC request (login included) gets HTTP 500, so odoorpc raises
  ``urllib.error.HTTPError``.
* ``"refuse"``: the server stops listening on its port until the outage is set back to ``"none"``,
  so connections are refused and odoorpc raises ``urllib.error.URLError``. The admin endpoints are
  unreachable meanwhile; restore from Python.

Admin: ``GET /_sandbox/odoo/duplicates?db=NAME`` (see :meth:`OdooServer.duplicates`) and
``POST /_sandbox/odoo/outage`` with ``{"kind": "none" | "http500"}``.
"""
from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
import traceback
from collections.abc import Callable, Mapping
from typing import Any, Literal, get_args

from aiohttp import web

from nightly_pipeline_sandbox.base import ADMIN_PREFIX, FaultConfig, LatencyModel, SandboxServer, dumps
from nightly_pipeline_sandbox.odoo_store import AccessDenied, AccessError, OdooDatabase, OdooError, Row

OutageKind = Literal["none", "http500", "refuse"]
SERVER_VERSION = "17.0"
VERSION_INFO: dict[str, Any] = {"server_version": SERVER_VERSION, "server_version_info": [17, 0, 0, "final", 0, ""],
                                "server_serie": SERVER_VERSION, "protocol_version": 1}
USER_CONTEXT = {"lang": "en_US", "tz": "Asia/Singapore"}
_OUTAGE_SWITCH_TIMEOUT_S = 30.0
_MASTER_PASSWORD_METHODS = frozenset({"create_database", "duplicate_database", "drop", "dump", "restore",
                                      "rename", "change_admin_password", "migrate_databases"})


class DatabaseNotFound(OdooError):
    """What PostgreSQL answers Odoo when asked for a database that does not exist."""

    exception_name = "psycopg2.OperationalError"

    def __init__(self, name: str) -> None:
        super().__init__(f'connection to server failed: FATAL:  database "{name}" does not exist')


class ModelRpc:
    """The model methods callable over RPC, with Odoo 17's parameter names and defaults."""

    METHODS = frozenset({"fields_get", "search", "search_count", "search_read", "read", "create", "write",
                         "unlink", "exists", "name_search", "default_get", "context_get"})

    def __init__(self, db: OdooDatabase, model: str, uid: int, context: Mapping[str, Any]) -> None:
        self._db = db
        self._model = model
        self._uid = uid
        self._active_test = context.get("active_test", True) is not False

    def fields_get(self, allfields: Any = None, attributes: Any = None) -> dict[str, dict[str, Any]]:
        return self._db.fields_get(self._model, allfields, attributes)

    def search(self, domain: Any, offset: Any = 0, limit: Any = None, order: Any = None,
               count: bool = False) -> list[int] | int:
        ids = self._db.search(self._model, domain, offset=offset, limit=limit, order=order,
                              active_test=self._active_test)
        return len(ids) if count else ids

    def search_count(self, domain: Any, limit: Any = None) -> int:
        return len(self._db.search(self._model, domain, limit=limit, active_test=self._active_test))

    def search_read(self, domain: Any = None, fields: Any = None, offset: Any = 0, limit: Any = None,
                    order: Any = None, load: Any = "_classic_read") -> list[Row]:
        ids = self._db.search(self._model, domain, offset=offset, limit=limit, order=order,
                              active_test=self._active_test)
        return self._db.read(self._model, ids, fields, load=load)

    def read(self, ids: Any, fields: Any = None, load: Any = "_classic_read") -> list[Row]:
        return self._db.read(self._model, ids, fields, load=load)

    def create(self, vals_list: Any) -> int | list[int]:
        return self._db.create(self._model, vals_list, uid=self._uid)

    def write(self, ids: Any, vals: Any) -> bool:
        return self._db.write(self._model, ids, vals, uid=self._uid)

    def unlink(self, ids: Any) -> bool:
        return self._db.unlink(self._model, ids)

    def exists(self, ids: Any) -> list[int]:
        return [row["id"] for row in self._db.read(self._model, ids, ["id"])]

    def name_search(self, name: Any = "", args: Any = None, operator: Any = "ilike", limit: Any = 100) -> list[Any]:
        return self._db.name_search(self._model, name, args, operator, limit, active_test=self._active_test)

    def default_get(self, fields_list: Any) -> Row:
        return self._db.default_get(self._model, fields_list, uid=self._uid)

    def context_get(self) -> dict[str, Any]:
        return dict(USER_CONTEXT)

    @classmethod
    def offers(cls, model: str, method: str) -> bool:
        return method in cls.METHODS and (method != "context_get" or model == "res.users")


class OdooServer(SandboxServer):
    """Odoo 17 over JSON-RPC with isolated in-memory databases; see the module docstring."""

    name = "odoo"

    def __init__(self, *, databases: dict[str, dict[str, str]] | None = None, seed: int = 0,
                 latency: LatencyModel | None = None, faults: FaultConfig | None = None) -> None:
        super().__init__(seed=seed, latency=latency, faults=faults)
        self._databases: dict[str, OdooDatabase] = {}
        self._databases_lock = threading.Lock()
        self._outage: OutageKind = "none"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._host = "127.0.0.1"
        for db_name, users in (databases or {}).items():
            self.add_database(db_name, users)

    # -- databases -------------------------------------------------------------------------------
    def add_database(self, name: str, users: Mapping[str, str]) -> None:
        """Create database ``name`` whose users (login → password) get uids 2, 3, … in order."""
        with self._databases_lock:
            if name in self._databases:
                raise ValueError(f"database {name!r} already exists")
            self._databases[name] = OdooDatabase(name, users)

    def databases(self) -> list[str]:
        with self._databases_lock:
            return sorted(self._databases)

    def save_state(self, path: Path) -> None:
        """Write every database's records to ``path`` (JSON), for a sandbox that outlives its process."""
        with self._databases_lock:
            state = {name: db.snapshot() for name, db in self._databases.items()}
        path.write_text(json.dumps(state))

    def load_state(self, path: Path) -> None:
        """Restore the databases saved by :meth:`save_state`; databases not configured now are ignored."""
        state = json.loads(path.read_text())
        with self._databases_lock:
            for name, snapshot in state.items():
                if name in self._databases:
                    self._databases[name].restore(snapshot)

    def database(self, name: str) -> OdooDatabase:
        with self._databases_lock:
            db = self._databases.get(name)
        if db is None:
            raise KeyError(f"no Odoo database named {name!r}")
        return db

    def records(self, db: str, model: str) -> list[Row]:
        """Stored rows of ``model`` in ``db`` (archived included), by id; many2one values are ids."""
        return self.database(db).records(model)

    def duplicates(self, db: str) -> dict[str, list[dict[str, Any]]]:
        """Active duplicates a correct sync never makes: companies sharing a company registry (UEN),
        contacts sharing (parent_id, lower(email)), and partners with more than one lead."""
        return self.database(db).duplicates()

    # -- accounting ------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        stats = super().stats()
        with self._databases_lock:
            databases = dict(self._databases)
        stats["outage"] = self._outage
        stats["databases"] = {name: db.stats() for name, db in sorted(databases.items())}
        return stats

    def reset(self) -> None:
        """Clear the request log and the per-database counters; records stay."""
        super().reset()
        with self._databases_lock:
            databases = list(self._databases.values())
        for db in databases:
            db.reset_counters()

    # -- outages ---------------------------------------------------------------------------------
    @property
    def outage(self) -> OutageKind:
        return self._outage

    def set_outage(self, kind: OutageKind) -> None:
        """Switch the simulated outage from any thread other than the server's event loop."""
        _check_outage_kind(kind)
        loop = self._loop
        if loop is None:
            self._outage = kind
            return
        if _running_loop() is loop:
            raise RuntimeError("set_outage() would block the server loop; await set_outage_async() instead")
        asyncio.run_coroutine_threadsafe(self.set_outage_async(kind), loop).result(timeout=_OUTAGE_SWITCH_TIMEOUT_S)

    async def set_outage_async(self, kind: OutageKind) -> None:
        _check_outage_kind(kind)
        previous, self._outage = self._outage, kind
        if kind == "refuse" and previous != "refuse":
            await self._stop_listening()
        elif kind != "refuse" and previous == "refuse":
            await self._listen()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        await super().start(host, port)
        self._loop = asyncio.get_running_loop()
        self._host = host
        if self._outage == "refuse":
            await self._stop_listening()

    async def stop(self) -> None:
        await super().stop()
        self._loop = None

    async def _stop_listening(self) -> None:
        if self._runner is not None:
            for site in list(self._runner.sites):
                await site.stop()

    async def _listen(self) -> None:
        if self._runner is not None and not self._runner.sites:
            site = web.TCPSite(self._runner, self._host, self.port, backlog=1024, reuse_address=True)
            await site.start()

    # -- routes ----------------------------------------------------------------------------------
    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/web/webclient/version_info", self._version_info)
        app.router.add_post("/jsonrpc", self._jsonrpc)
        app.router.add_get(ADMIN_PREFIX + "odoo/duplicates", self._admin_duplicates)
        app.router.add_post(ADMIN_PREFIX + "odoo/outage", self._admin_outage)

    async def _version_info(self, request: web.Request) -> web.Response:
        return await self._answer(request, lambda params: dict(VERSION_INFO))

    async def _jsonrpc(self, request: web.Request) -> web.Response:
        return await self._answer(request, self._dispatch_rpc)

    async def _answer(self, request: web.Request, handle: Callable[[dict[str, Any]], Any]) -> web.Response:
        if self._outage == "http500":
            return web.Response(status=500, text="Internal Server Error")
        try:
            envelope = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return web.Response(status=400, text="Invalid JSON data")
        if not isinstance(envelope, dict) or not isinstance(envelope.get("params", {}), dict):
            return web.Response(status=400, text="Invalid JSON-RPC data")
        request_id = envelope.get("id")
        try:
            result = handle(envelope.get("params", {}))
        except Exception as exc:  # noqa: BLE001 - Odoo reports every server-side exception in the envelope
            return web.json_response({"jsonrpc": "2.0", "id": request_id, "error": error_payload(exc)},
                                     dumps=dumps)
        return web.json_response({"jsonrpc": "2.0", "id": request_id, "result": result}, dumps=dumps)

    async def _admin_duplicates(self, request: web.Request) -> web.Response:
        name = request.query.get("db")
        if not name:
            return web.json_response({"error": "query parameter db is required"}, status=400)
        try:
            return web.json_response(self.duplicates(name), dumps=dumps)
        except KeyError:
            return web.json_response({"error": f"no database {name!r}"}, status=404)

    async def _admin_outage(self, request: web.Request) -> web.Response:
        body = await request.json()
        kind = body.get("kind") if isinstance(body, dict) else None
        if kind not in ("none", "http500"):
            return web.json_response({"error": "kind must be 'none' or 'http500' (restore 'refuse' from Python)"},
                                     status=400)
        await self.set_outage_async(kind)
        return web.json_response({"outage": self._outage})

    # -- JSON-RPC services -----------------------------------------------------------------------
    def _dispatch_rpc(self, params: dict[str, Any]) -> Any:
        unexpected = sorted(set(params) - {"service", "method", "args"})
        if unexpected:
            raise TypeError(f"jsonrpc() got an unexpected keyword argument '{unexpected[0]}'")
        missing = [key for key in ("service", "method", "args") if key not in params]
        if missing:
            raise TypeError(f"jsonrpc() missing 1 required positional argument: '{missing[0]}'")
        service, method, args = params["service"], params["method"], params["args"]
        if not isinstance(args, list):
            raise TypeError(f"dispatch_rpc() argument after * must be an iterable, not {type(args).__name__}")
        services: dict[str, Callable[[Any, list[Any]], Any]] = {
            "common": self._common, "object": self._object, "db": self._db_service}
        if service not in services:
            raise KeyError(service)
        return services[service](method, args)

    def _common(self, method: Any, args: list[Any]) -> Any:
        if method == "version":
            return dict(VERSION_INFO)
        if method == "login":
            return self._authenticate(*args)
        if method == "authenticate":
            return _authenticate_with_env(self._authenticate, *args)
        raise Exception(f"Method not found: {method}")  # noqa: TRY002 - Odoo raises a bare Exception here

    def _authenticate(self, db: Any, login: Any, password: Any) -> int | bool:
        return self._existing_database(db).authenticate(login, password) or False

    def _db_service(self, method: Any, args: list[Any]) -> Any:
        if method in _MASTER_PASSWORD_METHODS:
            raise AccessDenied()
        if method == "list":
            return self.databases()
        if method == "db_exist":
            return _db_exist(self.databases(), *args)
        if method == "server_version":
            return SERVER_VERSION
        raise KeyError(f"Method not found: {method}")

    def _object(self, method: Any, args: list[Any]) -> Any:
        if method not in ("execute", "execute_kw"):
            raise NameError(f"Method not available {method}")
        if len(args) < 5:
            raise TypeError(f"{method}() needs db, uid, password, model and method")
        db_name, uid, password, model, model_method, *rest = args
        db = self._existing_database(db_name)
        uid = _as_uid(uid)
        if not db.check_credentials(uid, password):
            raise AccessDenied()
        if method == "execute":
            call_args, call_kwargs = rest, {}
        else:
            call_args, call_kwargs = _execute_kw_arguments(rest)
        return self._call_model(db, uid, model, model_method, call_args, call_kwargs)

    def _call_model(self, db: OdooDatabase, uid: int, model: Any, method: Any, args: list[Any],
                    kwargs: dict[str, Any]) -> Any:
        db.spec(model)
        if not isinstance(method, str) or method.startswith("_"):
            raise AccessError(f"Private methods (such as {method}) cannot be called remotely.")
        if not ModelRpc.offers(model, method):
            raise AttributeError(f"The method '{method}' does not exist on the model '{model}'")
        db.count_call(model, method)
        context = kwargs.pop("context", None) or {}
        if not isinstance(context, dict):
            raise ValueError(f"Invalid context {context!r}: expected an object")
        with db.transaction():
            return getattr(ModelRpc(db, model, uid, context), method)(*args, **kwargs)

    def _existing_database(self, name: Any) -> OdooDatabase:
        with self._databases_lock:
            db = self._databases.get(name) if isinstance(name, str) else None
        if db is None:
            raise DatabaseNotFound(str(name))
        return db


# -- helpers -------------------------------------------------------------------------------------
def error_payload(exc: BaseException) -> dict[str, Any]:
    """Odoo's ``serialize_exception`` wrapped in its JSON-RPC error object."""
    name = exc.exception_name if isinstance(exc, OdooError) else _builtin_name(exc)
    message = exc.message if isinstance(exc, OdooError) else str(exc)
    debug = "Traceback (most recent call last):\n" + "".join(traceback.format_tb(exc.__traceback__)) + \
        f"{name}: {message}\n"
    return {"code": 200, "message": "Odoo Server Error",
            "data": {"name": name, "debug": debug, "message": message, "arguments": [message], "context": {}}}


def _builtin_name(exc: BaseException) -> str:
    """Name sandbox-specific exceptions after the builtin Odoo would raise (DomainError → ValueError)."""
    builtin = next(cls for cls in type(exc).__mro__ if cls.__module__ == "builtins")
    return f"builtins.{builtin.__name__}"


def _check_outage_kind(kind: str) -> None:
    if kind not in get_args(OutageKind):
        raise ValueError(f"unknown outage kind {kind!r}; expected one of {get_args(OutageKind)}")


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _as_uid(uid: Any) -> int:
    """Odoo runs ``int(params[1])`` on the uid, so ``"2"`` works and ``"x"`` is a ValueError."""
    if isinstance(uid, bool):
        raise AccessDenied()
    return int(uid)


def _execute_kw_arguments(rest: list[Any]) -> tuple[list[Any], dict[str, Any]]:
    if not rest or len(rest) > 2:
        raise TypeError(f"execute_kw() takes 6 or 7 positional arguments but {len(rest) + 5} were given")
    args, kwargs = rest[0], rest[1] if len(rest) == 2 else {}
    if not isinstance(args, list):
        raise TypeError(f"execute_kw() args must be a list, not {type(args).__name__}")
    if not isinstance(kwargs, dict):
        raise TypeError(f"execute_kw() kwargs must be an object, not {type(kwargs).__name__}")
    return args, dict(kwargs)


def _authenticate_with_env(authenticate: Callable[[Any, Any, Any], Any], db: Any, login: Any, password: Any,
                           user_agent_env: Any) -> Any:
    return authenticate(db, login, password)


def _db_exist(databases: list[str], db_name: Any) -> bool:
    return db_name in databases
