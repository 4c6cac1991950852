.PHONY: check demo
check:
	scripts/setup.sh --dev
	scripts/check.sh
demo:
	scripts/setup.sh
	.venv/bin/python3 app.py import-graph data/sample-graph.json
	.venv/bin/python3 app.py --dry-run --template-dir openshift/templates --output-dir manifests
