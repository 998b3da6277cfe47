"""The business rules of cadesk, in plain Python.

Nothing here imports nonebot, SQLAlchemy or aiohttp (a test checks it): a rule about orders or
ID numbers is testable without a bot or a database.
"""
