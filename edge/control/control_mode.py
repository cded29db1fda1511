"""Control mode resolution: free, coordinated or adaptive, and why.

Rules this module keeps (tests/control/test_adaptive.py and
test_coordination.py check them):

1. The plan decides by default: coordinated when it has a pattern, adaptive
   when it asks for adaptive timing, free otherwise; the reason names the plan.
2. A SetMode override (local or central; "plan" clears it) wins over the
   plan, and the reason names its source, except that a coordinated override
   on a plan with no pattern keeps the plan's own mode and says so.
3. It is resolved again whenever the plan, the site's timing or the override
   changes; the controller then sets coordination and recalls from it.

State: none (the override stays on the controller, set by commands.py).
"""

from __future__ import annotations

from edge.control.site import Plan
from edge.control.states import ADAPTIVE, COORDINATED, FREE


def resolve(plan: Plan, override: tuple[str, str] | None) -> tuple[str, str]:
    """The control mode in force for `plan` under `override` (mode, source), and why."""
    mode = COORDINATED if plan.pattern else ADAPTIVE if plan.adaptive else FREE
    reason = f"plan {plan.id}"
    if override is not None:
        wanted, source = override
        if wanted == COORDINATED and plan.pattern is None:
            reason = f"plan {plan.id} (no pattern for the {source} coordinated mode)"
        else:
            mode, reason = wanted, f"{source} command"
    return mode, reason
