"""An Airflow DAG running Headwater's daily feature job for each date `ds`: the transactions
of the lake's `date={{ ds }}` partition become per-user daily features in the offline store's
`date={{ ds }}` partition, replaced on every run of that date (retries and backfills leave one
copy). Headwater exits 0 when the run completed, non-zero with the reason otherwise, so
Airflow's retries and alerts work as for any task.

Not run by Headwater's tests (Airflow is a large install); the same commands are:
    headwater run --once --set ds=2024-03-04 --connectors-dir examples/batch/connectors.d
"""

import pendulum
from airflow import DAG
from airflow.operators.bash import BashOperator

with DAG(
    dag_id="daily_user_features",
    start_date=pendulum.datetime(2024, 3, 1, tz="UTC"),
    schedule="@daily",
    catchup=True,
    max_active_runs=1,
) as dag:
    BashOperator(
        task_id="compute_daily_features",
        # One data dir per date: concurrent dates keep their run records apart.
        bash_command=(
            "headwater run --once --set ds={{ ds }} "
            "--connectors-dir /opt/features/connectors.d "
            "--data-dir /var/lib/headwater/daily/{{ ds }} "
            "--max-dead-letters 100"
        ),
        cwd="/opt/features",
        retries=2,
    )
