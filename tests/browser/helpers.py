"""Steps the browser tests share."""


def log_in(page, base: str, username: str, password: str) -> None:
    """Log in through the login form from a clean session and wait for the models list."""
    page.context.clear_cookies()
    page.goto(base + "/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(base + "/")
