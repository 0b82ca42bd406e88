-- A session remembers which password it was made with: a digest of the password hash of its account (or of
-- root's), never the password. A session whose credential is not its account's current one has ended, so a
-- password change ends every session made with the old one (services/auth.py). Sessions from before this
-- column have '' and end at the upgrade: their users log in once more.
ALTER TABLE sessions ADD COLUMN credential TEXT NOT NULL DEFAULT '';
