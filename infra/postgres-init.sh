#!/bin/sh
# The databases of the production stack, as `colorize stack up --production` makes them
# (stacks/production.py create_databases): a role and a database for Prefect, a role with two
# databases for MLflow (tracking and registry; its users and permissions).
set -e
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres <<SQL
CREATE ROLE prefect LOGIN PASSWORD '$PREFECT_DB_PASSWORD';
CREATE ROLE mlflow LOGIN PASSWORD '$MLFLOW_DB_PASSWORD';
CREATE DATABASE prefect OWNER prefect;
CREATE DATABASE mlflow OWNER mlflow;
CREATE DATABASE mlflow_auth OWNER mlflow;
SQL
