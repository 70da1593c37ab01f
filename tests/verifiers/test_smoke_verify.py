from helpers import NOW


def test_a_fresh_code_is_accepted_once(verifier, make_token, transit_in):
    token = make_token()
    first = verifier.verify(token, "transit", transit_in, now=NOW)
    again = verifier.verify(token, "transit", transit_in, now=NOW)
    assert (first.ok, first.code) == (True, "accepted")
    assert (again.ok, again.code) == (False, "replayed")
