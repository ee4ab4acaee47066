"""What the patient reads: message templates per clinic and language (defaults in
`defaults.py`, care memos in `memos.py`), rendered with named variables by `render.py`.

Templates are data: a clinic overrides any (kind, language) through the API, and rendering
happens in the messaging activity, so a changed text never touches workflow code.
"""

LANGUAGES = ("ru", "uk", "en")
DEFAULT_LANGUAGE = "ru"
