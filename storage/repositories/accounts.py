"""One person's chat accounts across channels."""

from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.messages import Account


async def accounts_of(session: AsyncSession, account: Account) -> list[Account]:
    """The accounts joined with ``account`` (a second channel bound with a code from the first),
    itself first: the chat outbox may reach the person through any of them. Each account
    stands alone until accounts can be joined."""
    return [account]
