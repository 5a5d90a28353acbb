"""Consent: what each person (or their parent) has agreed to, for which channel, and until when.

`state` turns stored records into the plain data `gatekeeper.policy` decides with; `records` grants
and withdraws; `due` lists re-consent and expiry; `withdrawals` is the public form; `summary` is one
person's standing per channel. The MIS roll (`mis_csv`, `mis_import`, `mis_upload`) brings people
in with their consent.
"""
