"""A simulated assistant, instrumented with `tracetui.tracer`, to show what tracetui sees.

Each user request runs through the four HRMs — altitude (how far up to think), focus (routing,
gates, consent), reasoning (classify, route, escalate), learning (patterns) — plus memory and
system, with several agents (labelled), correlation ids and baggage. Some gates block, some steps
fail, and, on purpose, one request in each block of 50 breaks a contract:

    request 1 of the block  a child's baggage leaks `session_id` (copied by hand)
    request 2               a child sets its own correlation id by hand: no parent_correlation_id
    request 3               a `context.defaulted` outcome (domain fell back to its default)
    request 4               a `context.failed` outcome (user preferences could not be loaded)
    request 5               an `altitude.transition` without its `reason` trace data

Run it with `tracetui demo` (it then streams to tracetui), or on its own:
`python demo/assistant.py --rate 5` writes `trace.jsonl` (tracing is switched on unless
DOPEJAR_TRACE is set to something else). It runs until interrupted unless given `--duration` or
`--requests`.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import time
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, Final

from tracetui.tracer import Span, tracer

VIOLATIONS: Final = {
    1: "leaked_session_id",
    2: "missing_parent_correlation_id",
    3: "context_defaulted",
    4: "context_failed",
    5: "missing_trace_data",
}
"""Request number within each block of `BLOCK` → the contract violation it commits on purpose."""
BLOCK: Final = 50

TRACE_DATA: Final = {
    "altitude.transition": ("from_level", "to_level", "reason"),
    "altitude.evaluate": ("altitude", "verdict", "confidence"),
    "altitude.plan": ("altitude", "intent", "plan_summary"),
    "altitude.execute": ("altitude", "action_type"),
    "focus.stance_change": ("from_stance", "to_stance", "gate"),
    "focus.gate_check": ("gate_type", "decision", "reason"),
    "focus.lane_switch": ("from_lane", "to_lane", "reason"),
    "focus.consent_check": ("operation", "allowed"),
    "focus.route": ("signal_type", "bundle", "agents"),
    "reasoning.classify": ("input_type", "confidence"),
    "reasoning.route": ("strategy", "reason"),
    "reasoning.escalate": ("from_level", "to_level", "trigger"),
    "learning.pattern_match": ("pattern_code", "confidence"),
    "learning.pattern_add": ("pattern_code", "source"),
    "learning.pattern_trim": ("pattern_code", "reason"),
    "learning.generalize": ("from_patterns", "to_pattern"),
    "memory.read": ("namespace", "key", "tier"),
    "memory.write": ("namespace", "key", "tier", "tokens_saved"),
    "memory.promote": ("key", "from_tier", "to_tier"),
    "memory.demote": ("key", "from_tier", "to_tier"),
}
"""The trace data each trace point records (the `dopejar` contract requires these keys)."""

REQUESTS: Final = (
    ("summarise yesterday's meeting notes", "summary", "L2"),
    ("refactor the billing module into services", "code", "L1"),
    ("what did we decide about the cache TTL?", "recall", "L3"),
    ("delete the old database backups", "destructive", "L1"),
    ("plan the Q3 roadmap with the team goals", "planning", "L4"),
    ("why is the nightly build red?", "debug", "L2"),
    ("draft a reply to the customer about the outage", "writing", "L3"),
    ("rename every `tmp_` variable in the repo", "code", "L1"),
    ("send the report to the whole company", "destructive", "L2"),
    ("compare our latency with last month", "analysis", "L3"),
)
LEVELS: Final = ("L1", "L2", "L3", "L4")
STANCES: Final = ("open", "focused", "guarded")
LANES: Final = ("fast", "deliberate", "review")
TIERS: Final = ("hot", "warm", "cold")
AGENTS: Final = {
    "planner": {"env": "demo", "team": "core"},
    "coder": {"env": "demo", "lang": "python"},
    "reviewer": {"env": "demo", "strict": "true"},
    "librarian": {"env": "demo", "store": "sqlite"},
}


@dataclass
class Session:
    """One user's session: a run id (propagates), a session id and name (must not)."""

    number: int
    run_id: str
    session_id: str
    session_name: str
    level: str = "L3"
    stance: str = "open"
    lane: str = "fast"
    patterns: list[str] = field(default_factory=list)


class Assistant:
    """The simulated assistant: `handle(n)` processes request number `n`."""

    def __init__(self, rng: random.Random, pace: float) -> None:
        self.rng = rng
        self.pace = pace
        self.session = self._new_session(0)
        self.stop = False

    # -- helpers -------------------------------------------------------------------------------
    def _new_session(self, number: int) -> Session:
        hexid = f"{self.rng.getrandbits(32):08x}"
        return Session(
            number=number,
            run_id=f"run-{hexid[:6]}",
            session_id=f"sess-{hexid}",
            session_name=self.rng.choice(("morning standup", "deep work", "on call", "review")),
        )

    def work(self, low: float = 0.2, high: float = 1.0) -> None:
        """Pretend to work for a while (scaled to the request rate)."""
        time.sleep(self.pace * self.rng.uniform(low, high))

    def agent(self, name: str) -> Any:
        return tracer.agent(name, run_id=self.session.run_id, labels=AGENTS[name])

    # -- the request pipeline ------------------------------------------------------------------
    def handle(self, n: int) -> None:
        if n % 8 == 0:
            self.session = self._new_session(n // 8)
        s = self.session
        text, kind, target = REQUESTS[n % len(REQUESTS)]
        violation = VIOLATIONS.get(n % BLOCK)
        baggage = {
            "run_id": s.run_id,
            "project": "tracetui-demo",
            "source": "chat",
            "session_id": s.session_id,
            "session_name": s.session_name,
        }
        corr = f"req-{n:05d}-{self.rng.getrandbits(16):04x}"
        with (
            self.agent("planner"),
            tracer.span(
                "sys", "request", "assistant.py", text, correlation_id=corr, baggage=baggage
            ) as root,
        ):
            try:
                self._pipeline(root, n, text, kind, target, violation)
            except TimeoutError as exc:
                root.set_output(f"failed: {exc}")
                raise
            finally:
                if root.status == "success" and not root.output_summary:
                    root.set_output(f"answered ({kind})")

    def _pipeline(
        self, root: Span, n: int, text: str, kind: str, target: str, violation: str | None
    ) -> None:
        s = self.session
        if violation == "missing_trace_data" and target == s.level:
            target = LEVELS[(LEVELS.index(target) + 1) % len(LEVELS)]
        verdict = self.evaluate(root, text, kind, target, violation)
        if verdict != s.level:
            self.transition(s.level, verdict, kind, violation)
            s.level = verdict
        self.stance(kind)
        self.classify(text, kind)
        with tracer.span("foc", "route", "focus/router.py", kind) as route:
            bundle = "tools" if kind in ("code", "destructive", "debug") else "knowledge"
            agents = ["coder", "reviewer"] if kind == "code" else ["planner"]
            route.set_output(bundle, signal_type=kind, bundle=bundle, agents=agents)
            self.work(0.1, 0.3)
        self.plan(text, kind, violation)
        if not self.gates(kind):
            root.block("a gate refused the action")
            return
        self.execute(kind, n, violation)
        self.learn(kind)
        self.tidy_memory(n)

    def evaluate(self, root: Span, text: str, kind: str, target: str, violation: str | None) -> str:
        s = self.session
        baggage = None
        if violation == "leaked_session_id":
            # The bug on display: the request's baggage copied by hand, session_id included.
            baggage = dict(root.baggage)
        with tracer.span(
            "alt", "evaluate", "altitude/evaluator.py", text[:60], baggage=baggage
        ) as span:
            with self.agent("librarian"):
                match = self.pattern_match(kind)
                self.memory_read("preferences", f"user:{s.session_name}")
            confidence = round(self.rng.uniform(0.55, 0.98), 2)
            if match:
                confidence = min(0.99, confidence + 0.1)
            span.set_output(
                f"{s.level} → {target}", altitude=s.level, verdict=target, confidence=confidence
            )
            self.work()
            return target

    def pattern_match(self, kind: str) -> bool:
        s = self.session
        with tracer.span("lrn", "pattern_match", "learning/patterns.py", kind) as span:
            code = f"P-{kind[:3].upper()}-{len(s.patterns) % 7}"
            hit = code in s.patterns
            conf = round(self.rng.uniform(0.6, 0.95), 2) if hit else 0.0
            span.set_output("hit" if hit else "miss", pattern_code=code, confidence=conf)
            self.work(0.1, 0.3)
            return hit

    def memory_read(self, namespace: str, key: str) -> None:
        with tracer.span("mem", "read", "memory/store.py", key) as span:
            tier = self.rng.choice(TIERS)
            hit = self.rng.random() < 0.7
            span.set_output(
                "hit" if hit else "miss", namespace=namespace, key=key, tier=tier, hit=hit
            )
            self.work(0.05, 0.2)

    def transition(self, frm: str, to: str, kind: str, violation: str | None) -> None:
        with tracer.span("alt", "transition", "altitude/controller.py", f"{frm}→{to}") as span:
            data: dict[str, Any] = {"from_level": frm, "to_level": to}
            if violation != "missing_trace_data":
                data["reason"] = f"{kind} request needs {to}"
            span.set_output("success", **data)
            self.work(0.05, 0.2)

    def stance(self, kind: str) -> None:
        s = self.session
        to = "guarded" if kind == "destructive" else "focused" if kind == "code" else "open"
        if to == s.stance:
            return
        with tracer.span("foc", "stance_change", "focus/stance.py", f"{s.stance}→{to}") as span:
            gate = "WriteApprovalGate" if to == "guarded" else "none"
            span.set_output(to, from_stance=s.stance, to_stance=to, gate=gate)
            s.stance = to

    def classify(self, text: str, kind: str) -> None:
        with tracer.span("rsn", "classify", "reasoning/classifier.py", text[:60]) as span:
            confidence = round(self.rng.uniform(0.5, 0.99), 2)
            span.set_output(kind, input_type=kind, confidence=confidence)
            self.work(0.2, 0.6)
        with tracer.span("rsn", "route", "reasoning/router.py", kind) as span:
            strategy = "chain_of_thought" if confidence < 0.7 else "direct"
            span.set_output(strategy, strategy=strategy, reason=f"confidence {confidence}")
            tracer.event(
                "sys",
                "context.propagated",
                "context.py",
                "domain",
                kind,
                metadata={"field": "domain", "value": kind},
            )

    def plan(self, text: str, kind: str, violation: str | None) -> None:
        s = self.session
        with tracer.span("alt", "plan", "altitude/planner.py", text[:60]) as span:
            if violation == "context_defaulted":
                tracer.event(
                    "sys",
                    "context.defaulted",
                    "context.py",
                    "domain",
                    "general",
                    metadata={"field": "domain", "default": "general", "reason": "unclassified"},
                )
            if violation == "context_failed":
                tracer.event(
                    "sys",
                    "context.failed",
                    "context.py",
                    "user_preferences",
                    "unavailable",
                    status="error",
                    metadata={"field": "user_preferences", "reason": "memory tier cold, timed out"},
                )
            steps = self.rng.randint(2, 5)
            span.set_output(
                f"{steps} steps",
                altitude=s.level,
                intent=kind,
                plan_summary=f"{steps} steps for a {kind} request",
            )
            self.work()

    def gates(self, kind: str) -> bool:
        with tracer.span("foc", "gate_check", "focus/gates.py", "WriteApprovalGate") as span:
            risky = kind == "destructive"
            consent = not risky or self.rng.random() < 0.4
            decision = "allowed" if consent else "denied"
            reason = (
                "read-only request" if not risky else ("user approved" if consent else "no consent")
            )
            span.set_output(
                decision, gate_type="WriteApprovalGate", decision=decision, reason=reason
            )
            span.set_metadata(user_consent=consent)
            if not consent:
                span.block(reason)
                return False
        with tracer.span("foc", "consent_check", "focus/consent.py", kind) as span:
            allowed = self.rng.random() > 0.05
            span.set_output("allowed" if allowed else "refused", operation=kind, allowed=allowed)
            if not allowed:
                span.block("consent expired")
                return False
        return True

    def execute(self, kind: str, n: int, violation: str | None) -> None:
        s = self.session
        who = "coder" if kind in ("code", "debug") else "planner"
        job = f"job-{n:05d}-{self.rng.getrandbits(16):04x}"
        with (
            self.agent(who),
            tracer.span("alt", "execute", "altitude/executor.py", kind, correlation_id=job) as span,
        ):
            span.set_metadata(altitude=s.level, action_type=kind)
            lane = "review" if kind == "code" else "deliberate" if kind == "planning" else "fast"
            if lane != s.lane:
                with tracer.span("foc", "lane_switch", "focus/lanes.py", f"{s.lane}→{lane}") as ls:
                    ls.set_output(lane, from_lane=s.lane, to_lane=lane, reason=f"{kind} work")
                    s.lane = lane
            with tracer.span(
                "rsn",
                "route",
                "reasoning/tools.py",
                kind,
                correlation_id=f"tool-{n:05d}-{self.rng.getrandbits(16):04x}",
            ) as call:
                call.set_output("tool call", strategy="tool_use", reason=f"{kind} needs tools")
                if violation == "missing_parent_correlation_id":
                    # The bug on display: legacy code sets its own correlation id by hand, so the
                    # guarantee (parent_correlation_id = the enclosing call's id) is lost.
                    legacy = {"correlation_id": f"legacy-{n:05d}"}
                    with tracer.span(
                        "mem", "read", "legacy/cache.py", "cache:plan", metadata=legacy
                    ) as r:
                        r.set_output("hit", namespace="cache", key="cache:plan", tier="hot")
                self.work()
                if self.rng.random() < 0.12:
                    self.escalate(kind)
            if kind == "code" and self.rng.random() < 0.25:
                with (
                    self.agent("reviewer"),
                    tracer.span("rsn", "escalate", "reasoning/review.py", "review failed") as rev,
                ):
                    rev.set_metadata(from_level="L1", to_level="L2", trigger="tests failed")
                    self.work(0.1, 0.3)
                    raise TimeoutError("review timed out after 30s")
            with self.agent("librarian"):
                self.memory_write(kind, n)
            span.set_output("done")

    def escalate(self, kind: str) -> None:
        corr = f"esc-{self.rng.getrandbits(32):08x}"
        with tracer.span(
            "rsn", "escalate", "reasoning/escalation.py", kind, correlation_id=corr
        ) as span:
            span.set_output(
                "escalated",
                from_level="fast_model",
                to_level="deep_model",
                trigger="low confidence",
            )
            self.work(0.2, 0.5)

    def memory_write(self, kind: str, n: int) -> None:
        with tracer.span("mem", "write", "memory/store.py", f"result:{n}") as span:
            saved = self.rng.randint(0, 120)
            span.set_output(
                "written",
                namespace="results",
                key=f"result:{n}",
                tier="hot",
                tokens_saved=saved,
            )
            self.work(0.05, 0.2)

    def learn(self, kind: str) -> None:
        s = self.session
        code = f"P-{kind[:3].upper()}-{len(s.patterns) % 7}"
        with self.agent("librarian"):
            with tracer.span("lrn", "pattern_add", "learning/patterns.py", code) as span:
                s.patterns.append(code)
                span.set_output("added", pattern_code=code, source=kind)
            if len(s.patterns) >= 3 and self.rng.random() < 0.3:
                with tracer.span("lrn", "generalize", "learning/generalize.py", kind) as span:
                    general = f"G-{kind[:3].upper()}"
                    span.set_output(general, from_patterns=s.patterns[-3:], to_pattern=general)
            if len(s.patterns) > 6:
                old = s.patterns.pop(0)
                with tracer.span("lrn", "pattern_trim", "learning/patterns.py", old) as span:
                    span.set_output("trimmed", pattern_code=old, reason="over capacity (6)")

    def tidy_memory(self, n: int) -> None:
        if n % 3:
            return
        with self.agent("librarian"):
            if n % 2:
                with tracer.span("mem", "promote", "memory/tiers.py", f"result:{n}") as span:
                    span.set_output("promoted", key=f"result:{n}", from_tier="warm", to_tier="hot")
            else:
                key = f"result:{max(0, n - 9)}"
                with tracer.span("mem", "demote", "memory/tiers.py", key) as span:
                    span.set_output("demoted", key=key, from_tier="hot", to_tier="cold")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="tracetui-demo", description="A simulated assistant that emits trace events."
    )
    parser.add_argument("--rate", type=float, default=2.0, help="requests per second (default 2)")
    parser.add_argument(
        "--duration", type=float, default=0.0, help="stop after this many seconds (0 = never)"
    )
    parser.add_argument(
        "--requests", type=int, default=0, help="stop after this many requests (0 = never)"
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed (repeatable runs)")
    args = parser.parse_args(argv)
    if args.rate <= 0:
        parser.error("--rate must be > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the demo until interrupted (or `--duration`/`--requests`); returns the exit status."""
    args = parse_args(argv)
    if "DOPEJAR_TRACE" not in os.environ:
        os.environ["DOPEJAR_TRACE"] = "1"
        tracer.configure()
    print(f"tracetui demo: {args.rate:g} requests/s, events → {tracer.sink}", file=sys.stderr)
    budget = 1.0 / args.rate
    assistant = Assistant(random.Random(args.seed), pace=min(0.05, budget / 20))

    def stop(signum: int, frame: FrameType | None) -> None:
        assistant.stop = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    started = time.monotonic()
    n = 0
    errors = 0
    while not assistant.stop:
        if args.requests and n >= args.requests:
            break
        if args.duration and time.monotonic() - started >= args.duration:
            break
        due = started + n * budget
        pause = due - time.monotonic()
        if pause > 0:
            time.sleep(pause)
            if assistant.stop:
                break
        try:
            assistant.handle(n)
        except TimeoutError:
            errors += 1
        n += 1
    tracer.flush()
    stats = tracer.stats()
    print(
        f"tracetui demo: {n} requests ({errors} failed), {stats.emitted} events, "
        f"{stats.dropped} dropped",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
