"""Small helpers every app's pages and API share: the JSON error envelope, the API paginator, form error display,
the tags field and the JSON pretty printer. It sits at the bottom with audit and accounts: it imports no app."""
