"""print_jobs.created_at is UTC for every kind of job, a shift report included, even when
the till's clock reads local time (the slip itself prints the local time)."""

from datetime import UTC, datetime, timedelta, timezone

from agent import printq, shifts

MSK = timezone(timedelta(hours=3))


def test_a_shift_report_and_its_copy_are_queued_with_utc_times(till):
    shifts.add_cashier(till.store, "anna", "Анна", "1357")
    shift = shifts.open_shift(till.store, "anna", datetime(2026, 12, 7, 9, 0, tzinfo=MSK))
    local = datetime(2026, 12, 7, 12, 30, tzinfo=MSK)
    report = shifts.x_report(till.store, shift.shift_id, local)
    job = shifts.queue_report(till.store, report, "Тест")
    copy = printq.enqueue_copy(till.store, job, local)
    for job_id in (job, copy):
        (created,) = till.store.one("SELECT created_at FROM print_jobs WHERE job_id = ?", (job_id,))
        assert created.endswith("+00:00"), created
        assert datetime.fromisoformat(created) == local.astimezone(UTC)
