"""The dashboard's read side: totals, the stuck list, case lists and exports, bounded by indexes.

Every query here reads either the cases created in the chosen period (the created_at index) or
the cases open right now (the state indexes), never the whole history: a county with a million
old cases answers as fast as one with ten thousand.

filters.py turns the filter bar into those bounded conditions; totals.py counts for the
overview page; lists.py pages through cases, CSV rows and failed messages; case_page.py finds
what one case's page shows beyond its card.
"""
