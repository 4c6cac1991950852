.PHONY: check demo
check:
	python3 -m pipenv run scripts/check.sh
demo:
	python3 -m pipenv run python3 app.py import-graph data/sample-graph.json
	python3 -m pipenv run python3 app.py --dry-run --template-dir openshift/templates --output-dir manifests
