"""Photos: taking them in, gating them, reviewing them, and showing staff what was decided.

`intake` (uploads and zips, batches, gate jobs), `idempotency` (re-sent requests), `gate` (the
decision for a photo, and `recheck`, the fresh decision from stored faces that every publication
path runs), `review` (the review queue), `face_crops` (crops for reviewers), `views` (what a
photo's and a batch's pages show), `access` (who may open which batch and photo).
"""
