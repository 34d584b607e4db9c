"""The alerter's configuration file (YAML): receivers, the routing tree and inhibition rules.

Semantics follow Alertmanager: an alert walks the tree depth-first; the first matching child
takes it unless that child has ``continue: true``; a node with no matching child takes it itself.
Children inherit ``receiver``, ``group_by`` and the three intervals from their parent.
``group_by: ["..."]`` groups by every label. Unlike Alertmanager, a root route without ``group_by``
groups by ``[model, model_version]``: one incident per model version
(:mod:`inferwatch.alerter.route.incidents`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from inferwatch.alerter.errors import ConfigError, MatcherError
from inferwatch.alerter.evaluation.durations import parse_duration_s
from inferwatch.alerter.route.incidents import DEFAULT_GROUP_BY
from inferwatch.alerter.route.matchers import Matcher, all_match, parse_matchers


class _Cfg(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _dur(v: Any) -> float | None:
    return None if v is None else parse_duration_s(v)


class ReceiverConfig(_Cfg):
    """One webhook endpoint and how to talk to it."""

    name: str = Field(min_length=1, max_length=128)
    url: str = Field(min_length=1)
    format: Literal["inferwatch", "alertmanager", "slack"] = "inferwatch"
    secret: str | None = Field(None, description="HMAC secret; prefer secret_env.")
    secret_env: str | None = Field(None, description="Name of the env var holding the HMAC secret.")
    signing: Literal["hmac-sha256", "none"] = Field(
        "hmac-sha256", description="`none` sends unsigned requests; it must be written out, with no secret."
    )
    send_resolved: bool = True
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_s: float | None = Field(None, gt=0)
    max_concurrency: int | None = Field(None, ge=1, le=1000)
    _secret: str | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _resolve_secret(self) -> ReceiverConfig:
        # Signed means signed: a missing secret is a configuration error, never a silent fallback
        # to unsigned requests. The env var is read here, once, when the configuration is loaded.
        who = f"receiver {self.name!r}"
        if self.signing == "none":
            if self.secret is not None or self.secret_env is not None:
                raise ValueError(f"{who}: `signing: none` with a secret; remove one of them")
            return self
        if self.secret is not None and self.secret_env is not None:
            raise ValueError(f"{who}: give secret or secret_env, not both")
        if self.secret_env is not None:
            value = os.environ.get(self.secret_env)
            if not value:
                state = "unset" if value is None else "empty"
                raise ValueError(f"{who}: secret_env {self.secret_env} is {state}; set it, "
                                 "or write `signing: none` on the receiver to send unsigned requests")
            self._secret = value
        elif self.secret:
            self._secret = self.secret
        else:
            raise ValueError(f"{who}: no secret to sign with; give secret_env (or secret), "
                             "or write `signing: none` on the receiver to send unsigned requests")
        return self

    def secret_value(self) -> str | None:
        """The HMAC secret resolved at load (``None`` only with ``signing: none``)."""
        return self._secret


class RouteConfig(_Cfg):
    """One node of the routing tree, as written."""

    receiver: str | None = None
    matchers: list[Any] = Field(default_factory=list)
    group_by: list[str] | None = None
    group_wait: float | None = None
    group_interval: float | None = None
    repeat_interval: float | None = None
    continue_: bool = Field(False, alias="continue")
    routes: list[RouteConfig] = Field(default_factory=list)

    _d = field_validator("group_wait", "group_interval", "repeat_interval", mode="before")(_dur)


class InhibitRuleConfig(_Cfg):
    """Alerts matching ``source_matchers`` mute alerts matching ``target_matchers`` with equal ``equal`` labels."""

    source_matchers: list[Any] = Field(default_factory=list)
    target_matchers: list[Any] = Field(default_factory=list)
    equal: list[str] = Field(default_factory=list)


class DeliveryConfig(_Cfg):
    """Retry and concurrency policy of webhook delivery."""

    timeout_s: float = Field(5.0, gt=0)
    max_concurrency: int = Field(32, ge=1, le=10_000)
    per_receiver_concurrency: int = Field(4, ge=1, le=1000)
    backoff_initial_s: float = Field(0.5, gt=0)
    backoff_max_s: float = Field(30.0, gt=0)
    give_up_after_s: float = Field(3600.0, gt=0, description="Stop retrying a notification after this long.")
    retry_after_max_s: float = Field(300.0, gt=0, description="Cap on a receiver's Retry-After.")

    _d = field_validator("timeout_s", "backoff_initial_s", "backoff_max_s", "give_up_after_s", mode="before")(_dur)


class HttpConfig(_Cfg):
    """Where the alerter serves its own API (``/v1/alerts``, ``/v1/silences``); port 0 = off."""

    host: str = "127.0.0.1"
    port: int = Field(9094, ge=0, le=65535)


class AlerterConfig(_Cfg):
    """The whole configuration file."""

    http: HttpConfig = HttpConfig()
    delivery: DeliveryConfig = DeliveryConfig()
    route: RouteConfig
    receivers: list[ReceiverConfig]
    inhibit_rules: list[InhibitRuleConfig] = Field(default_factory=list)
    resolved_retention_s: float = Field(3600.0, gt=0, description="How long resolved alerts are kept (wall time).")
    start_from: Literal["earliest", "latest"] = Field("latest", description="Where a new consumer group starts.")
    session_timeout_s: float = Field(
        10.0, ge=1, le=300,
        description="How long the other alerters of the group wait for a silent one before they take its "
                    "partitions over (Kafka's session.timeout.ms; at least the broker's "
                    "group.min.session.timeout.ms, 6 s by default).")

    @model_validator(mode="after")
    def _check(self) -> AlerterConfig:
        names = [r.name for r in self.receivers]
        if len(set(names)) != len(names):
            raise ValueError("receiver names must be unique")
        if self.route.receiver is None:
            raise ValueError("the root route needs a receiver")

        def walk(r: RouteConfig) -> None:
            if r.receiver is not None and r.receiver not in names:
                raise ValueError(f"route receiver {r.receiver!r} is not among receivers {names}")
            for c in r.routes:
                walk(c)

        walk(self.route)
        return self


@dataclass(frozen=True)
class Route:
    """A compiled routing node with inherited settings."""

    path: str
    receiver: str
    matchers: tuple[Matcher, ...]
    group_by: tuple[str, ...]
    group_all: bool
    group_wait_s: float
    group_interval_s: float
    repeat_interval_s: float
    continue_: bool
    children: tuple[Route, ...]

    def group_labels(self, labels: Mapping[str, str]) -> dict[str, str]:
        """The labels this route groups ``labels`` by."""
        if self.group_all:
            return dict(labels)
        return {k: labels[k] for k in self.group_by if k in labels}


def compile_route(cfg: RouteConfig, parent: Route | None = None) -> Route:
    """Compile the tree, children inheriting from parents (root defaults as in Alertmanager)."""
    try:
        matchers = parse_matchers(cfg.matchers)
    except MatcherError as exc:
        raise ConfigError(f"route matchers: {exc}") from None
    # an unwritten root group_by is one incident per model version (Alertmanager's default, one
    # group for everything, would mix models); write `group_by: []` for Alertmanager's behaviour
    group_by = tuple(cfg.group_by) if cfg.group_by is not None else (parent.group_by if parent else DEFAULT_GROUP_BY)
    group_all = "..." in group_by or (cfg.group_by is None and parent is not None and parent.group_all)
    path = "{}" if parent is None else f"{parent.path}/{{{', '.join(str(m) for m in matchers)}}}"
    node = Route(
        path=path,
        receiver=cfg.receiver or (parent.receiver if parent else ""),
        matchers=matchers,
        group_by=tuple(g for g in group_by if g != "..."),
        group_all=group_all,
        group_wait_s=_pick(cfg.group_wait, parent.group_wait_s if parent else 30.0),
        group_interval_s=_pick(cfg.group_interval, parent.group_interval_s if parent else 300.0),
        repeat_interval_s=_pick(cfg.repeat_interval, parent.repeat_interval_s if parent else 14400.0),
        continue_=cfg.continue_,
        children=(),
    )
    kids: list[Route] = []
    for i, c in enumerate(cfg.routes):
        kid = compile_route(c, node)
        kids.append(_with_path(kid, f"{kid.path}#{i}" if any(
            str(o.matchers) == str(kid.matchers) for o in kids) else kid.path))
    return _replace_children(node, tuple(kids))


def _pick(v: float | None, default: float) -> float:
    return default if v is None else v


def _with_path(r: Route, path: str) -> Route:
    from dataclasses import replace
    return replace(r, path=path)


def _replace_children(r: Route, kids: tuple[Route, ...]) -> Route:
    from dataclasses import replace
    return replace(r, children=kids)


def match_routes(route: Route, labels: Mapping[str, str]) -> list[Route]:
    """The routes an alert with ``labels`` goes to (Alertmanager's ``Route.Match``)."""
    if not all_match(route.matchers, labels):
        return []
    out: list[Route] = []
    for child in route.children:
        got = match_routes(child, labels)
        out.extend(got)
        if got and not child.continue_:
            break
    return out or [route]


def load_config(path: Path | str) -> AlerterConfig:
    """Read and validate a configuration file; raises :class:`ConfigError` naming the file and field."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return parse_config(doc, str(path))


def parse_config(doc: Any, source: str = "<config>") -> AlerterConfig:
    """Validate a configuration mapping."""
    try:
        cfg = AlerterConfig.model_validate(doc)
    except ValidationError as exc:
        e = exc.errors(include_url=False)[0]
        loc = ".".join(str(x) for x in e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{source}: field {loc or '<root>'}: {msg}") from None
    try:
        compile_route(cfg.route)
        for ir in cfg.inhibit_rules:
            parse_matchers(ir.source_matchers)
            parse_matchers(ir.target_matchers)
    except (ConfigError, MatcherError) as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return cfg
