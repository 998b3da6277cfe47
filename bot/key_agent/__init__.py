"""The key agent: a small service beside the UKEY that runs token jobs for the bot.

It imports nothing from nonebot or ``storage`` (a test checks it), so it can be installed on the
applicant's PC on its own.
"""
