"""Publishing: every way a photo leaves, and taking it back.

Every path out decides again at that moment through `photos.gate.recheck`: `publish` (the published
store), `placements` (a copy placed outside our stores), `downloads` (a member of staff's clean
copy, itself recorded as a placement). `takedowns` removes copies and opens tasks for external ones;
`recheck` re-decides every live publication after a withdrawal and on the schedule.
"""
