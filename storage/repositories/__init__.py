"""Repositories: the queries the services need, each over one session (one transaction), one
module per aggregate. Services and adapters ask these; they build no SQL of their own (a test
checks it)."""

from storage.repositories.accounts import JoinCodes, JoinedAccounts, accounts_of
from storage.repositories.agents import Agents, PairingCodes
from storage.repositories.certificates import Certificates, Crls
from storage.repositories.chat_reach import ChatReaches
from storage.repositories.companies import Companies, Handlers
from storage.repositories.conversations import Conversations
from storage.repositories.mailboxes import Mailboxes
from storage.repositories.orders import Orders
from storage.repositories.outgoing_chat import OutgoingChats
from storage.repositories.outgoing_mail import OutgoingMails
from storage.repositories.token_jobs import TokenJobs
from storage.repositories.ukeys import Ukeys
from storage.repositories.webhook_events import WebhookEvents

__all__ = [
    "Agents",
    "Certificates",
    "ChatReaches",
    "Companies",
    "Conversations",
    "Crls",
    "Handlers",
    "JoinCodes",
    "JoinedAccounts",
    "Mailboxes",
    "Orders",
    "OutgoingChats",
    "OutgoingMails",
    "PairingCodes",
    "TokenJobs",
    "Ukeys",
    "WebhookEvents",
    "accounts_of",
]
