from pathlib import Path

import pytest
from django.conf import settings

from config.celery import app


@pytest.mark.skipif(not settings.CELERY_BROKER_URL.startswith("filesystem://"), reason="file-system broker only")
def test_tasks_queued_by_the_tests_stay_out_of_the_checkouts_broker_folder():
    queue = Path(app.conf.broker_transport_options["data_folder_in"])
    assert settings.VAR_DIR not in queue.parents
    with app.connection_for_write() as connection, connection.SimpleQueue("test-broker-probe") as probe:
        probe.put({"probe": 1})
    assert any(queue.iterdir())
    assert not any((settings.VAR_DIR / "broker" / "queue").glob("*test-broker-probe*"))
