"""What the decision service and audience-sync must agree on, imported by both and importing neither.

The Redis layout (``keys``: every key name; ``codecs``: every value's encoding; ``urls``: which Redis
URLs are accepted), the secret files (``secret_files``: bearer tokens and the lines of other secret
files) and the command-line conventions of both commands (``cli``: options with their default and
variable, the exit statuses).
"""
