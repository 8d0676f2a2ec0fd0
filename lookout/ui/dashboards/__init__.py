"""Dashboards: the model (model.py), their storage in the state database and the shipped ones
(store.py), the HTTP API (api.py) and the importer of Grafana dashboards (grafana.py)."""
