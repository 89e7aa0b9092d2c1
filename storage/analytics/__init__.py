"""The one implementation of the rates in docs/rates.md, for digests, the weekly analysis and
the dashboard.

Every query is bounded by its period through an indexed column (cases.created_at,
case_transitions.at) or by the open cases of one unit (department_id+state, township_id+state),
so a page view reads the period's cases, never the county's whole history.

scope.py says which cases and units a figure counts; rates.py computes the rates, rankings.py
the top lists and setbacks, digests.py a unit's morning lists.
"""

from storage.analytics.digests import unit_digest
from storage.analytics.rankings import setbacks, top_categories, top_grids
from storage.analytics.rates import county_rates, unit_rates
from storage.analytics.scope import NOT_A_UNITS_WORK, RESOLVED_STATES, SATISFIED_RATINGS, units
from storage.analytics.timeliness import case_is_late, late
from workflow.ports import Period, RankedItem, Setback, UnitDigest, UnitRates, UnitRef

__all__ = [
    "NOT_A_UNITS_WORK",
    "RESOLVED_STATES",
    "SATISFIED_RATINGS",
    "Period",
    "RankedItem",
    "Setback",
    "UnitDigest",
    "UnitRates",
    "UnitRef",
    "case_is_late",
    "county_rates",
    "late",
    "setbacks",
    "top_categories",
    "top_grids",
    "unit_digest",
    "unit_rates",
    "units",
]
