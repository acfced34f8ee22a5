"""Repositories: every query the services need, one module per thing stored.

A repository holds SQL and nothing else: no rule, no permission, no view. Services ask it for rows
(ORM objects they may change inside the unit of work) or for plain values, and decide.
"""
