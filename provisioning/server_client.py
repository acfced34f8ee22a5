"""The GenbaGate server as provisioning sees it: its HTTP API, as a logged-in account of the 元請.

Provisioning registers and retires gates through the same API the site office uses, so the
server's rules apply unchanged (only the site's 元請 or the operator manages its gates; every change
is in the audit log under the person's ID). Plain ``urllib``: four JSON calls do not need a client
library, and provisioning must not import the server's packages (it runs on the broker host).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from provisioning.errors import ServerError


class ServerClient:
    def __init__(self, base_url: str, timeout: float = 15.0) -> None:
        self.base = base_url.rstrip("/")
        if not self.base.endswith("/api/v1"):
            self.base += "/api/v1"
        self.timeout = timeout
        self.token: str | None = None

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode("utf-8")
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            try:
                err = json.loads(exc.read() or b"{}")
            except ValueError:
                err = {}
            raise ServerError(err.get("code", f"http_{exc.code}"),
                              err.get("message", f"サーバーが {exc.code} で拒否しました"),
                              err.get("message_en", f"the server answered {exc.code}")) from None
        except (urllib.error.URLError, OSError) as exc:
            raise ServerError(
                "server_unreachable",
                f"GenbaGate サーバー {self.base} に接続できません（{getattr(exc, 'reason', exc)}）。--server を確認してください",
                f"cannot reach the server at {self.base}: {exc}",
            ) from None
        return json.loads(raw) if raw else None

    def login(self, login_id: str, password: str) -> None:
        answer = self._call("POST", "/auth/login", {"login_id": login_id, "password": password})
        if answer.get("must_change_password"):
            raise ServerError("password_change_required",
                              "このIDは初回ログインのパスワード変更がまだです。画面から変更してから実行してください",
                              "change this ID's initial password first")
        self.token = answer["token"]

    def find_site(self, site: str) -> dict[str, Any]:
        """A site by its 現場ID (14 digits, what staff know) or the server's number."""
        sites = self._call("GET", "/sites")
        for s in sites:
            if s.get("ccus_id") == site or str(s.get("id")) == site:
                return dict(s)
        raise ServerError("site_not_found", f"現場 {site} が見つかりません（このIDで見られる現場: "
                          + (", ".join(f"{s.get('ccus_id')} {s.get('name')}" for s in sites) or "なし") + "）",
                          f"no site {site} visible to this account")

    def register_device(self, site_id: int, device_id: str, name: str, direction: str,
                        location: str | None) -> dict[str, Any]:
        body = {"device_id": device_id, "name": name, "direction": direction, "location": location}
        return dict(self._call("POST", f"/sites/{site_id}/devices", body))

    def devices(self, site_id: int) -> list[dict[str, Any]]:
        return list(self._call("GET", f"/sites/{site_id}/devices?include_retired=true"))

    def retire_device(self, device_id: str) -> dict[str, Any]:
        return dict(self._call("POST", f"/devices/{device_id}/retire"))
