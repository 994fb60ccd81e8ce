"""What a run found, and every way it is written: the one report schema (:mod:`.report`), the result
:func:`~pytest_advrobust.attack` returns, summaries, JSON, HTML, Markdown, artifacts, GitHub's workflow
commands, and the merge of a CI matrix's job reports.

Imports nothing from the attack wings: a report can be read, merged and written without torch's models.
"""
