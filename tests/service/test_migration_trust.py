"""Upgrading a live database to verified bindings (migration 0008): an account stays able to act
for its company only where that company has an approved order this account filed; every other
binding waits for approval. UKEYs cadesk made are on record for their company."""

from sqlalchemy import text

from storage.db import Database

ROWS = """
INSERT INTO companies (id, uscc, name, created_at) VALUES
  (1, '91370100MA3C000001', '甲公司', '2026-11-01 00:00:00'),
  (2, '91370100MA3C000002', '乙公司', '2026-11-01 00:00:00');
INSERT INTO handlers (id, platform, user_id, company_id, created_at) VALUES
  (1, 'qq', '10001', 1, '2026-11-01 00:00:00'),   -- filed an approved order: verified
  (2, 'qq', '10002', 1, '2026-11-01 00:00:00'),   -- only a rejected one: pending
  (3, 'qq', '10003', 2, '2026-11-01 00:00:00'),   -- nothing filed: pending
  (4, 'qq', '10004', 2, '2026-11-01 00:00:00');   -- approved, but for another company
INSERT INTO orders (id, number, type, status, company_id, handler_id, channel, fields,
                    created_at, updated_at, version) VALUES
  (1, 'XB-261101-AAAA', 'certificate', 'approved', 1, 1, 'chat', '{}',
   '2026-11-01 00:00:00', '2026-11-01 00:00:00', 1),
  (2, 'XB-261101-BBBB', 'certificate', 'rejected', 1, 2, 'chat', '{}',
   '2026-11-01 00:00:00', '2026-11-01 00:00:00', 1),
  (3, 'JS-261101-CCCC', 'unlock', 'completed', 1, 4, 'chat', '{}',
   '2026-11-01 00:00:00', '2026-11-01 00:00:00', 1);
INSERT INTO order_events (order_id, at, actor, event, from_status, to_status) VALUES
  (1, '2026-11-01 00:00:00', 'qq:10001', 'submit', 'draft', 'submitted'),
  (1, '2026-11-02 00:00:00', 'qq:900001', 'approve', 'submitted', 'approved'),
  (2, '2026-11-01 00:00:00', 'qq:10002', 'submit', 'draft', 'submitted'),
  (2, '2026-11-02 00:00:00', 'qq:900001', 'reject', 'submitted', 'rejected'),
  (3, '2026-11-02 00:00:00', 'qq:900001', 'approve', 'submitted', 'approved');
"""


async def test_only_accounts_with_an_approved_order_of_their_own_stay_verified(
        database_url: str) -> None:
    db = Database(database_url)
    async with db.engine.begin() as connection:
        await connection.run_sync(lambda sync: _upgrade(sync, "0007"))
        for statement in ROWS.split(";"):
            lines = [line.split("--")[0] for line in statement.splitlines()]
            if "".join(lines).strip():
                await connection.execute(text("\n".join(lines)))
    await db.migrate()
    async with db.engine.connect() as connection:
        rows = (await connection.execute(text(
            "SELECT user_id, status, verified_by FROM handlers ORDER BY id"))).all()
    await db.close()
    assert [(r.user_id, r.status) for r in rows] == [
        ("10001", "verified"), ("10002", "pending"), ("10003", "pending"), ("10004", "pending")]
    assert rows[0].verified_by == "migration 0008"


def _upgrade(sync_connection, revision: str) -> None:  # type: ignore[no-untyped-def]
    from alembic import command

    from storage.db import alembic_config

    command.upgrade(alembic_config(sync_connection), revision)
