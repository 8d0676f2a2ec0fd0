"""Lookout's web UI: a single-page app served by the main listener under /ui/.

The browser code lives in static/ (ES modules, no build step; third-party libraries vendored
in static/vendor/). The server side is small: routes.py serves the files and the SPA fallback;
dashboards/ keeps dashboards in the state database and serves their API.
"""
