# graph-refresh job image: Python 3.11, dependencies from Pipfile.lock, runs as an arbitrary non-root user.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 GRPC_VERBOSITY=ERROR
WORKDIR /opt/graph-refresh

COPY Pipfile Pipfile.lock scripts/pipenv-requirements.txt ./
RUN pip install --requirement pipenv-requirements.txt && pipenv install --system --deploy \
    && pip uninstall -y pipenv && rm pipenv-requirements.txt

COPY app.py ./
COPY graph_refresh ./graph_refresh
# Compiled here: PYTHONDONTWRITEBYTECODE would otherwise have every run compile each module it imports anew.
RUN python -m compileall -q app.py graph_refresh

# OpenShift runs with a random uid in group 0; the SQLite default path must be writable for it.
RUN chgrp -R 0 /opt/graph-refresh && chmod -R g=u /opt/graph-refresh
USER 1001

ENTRYPOINT ["python3", "app.py"]
