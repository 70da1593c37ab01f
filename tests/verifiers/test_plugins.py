"""Scenes are plug-ins (contract section 3): the registry, built-ins, an out-of-tree scene.

The out-of-tree scene is ``tests/plugin_example``, a distribution of its own.
Rather than installing it into the shared virtualenv, the tests make it visible
as an installer would: a ``.dist-info`` directory (``METADATA`` and
``entry_points.txt``, written from the example's ``pyproject.toml``) in a
temporary directory on ``sys.path``, where ``importlib.metadata`` finds it.
"""

from __future__ import annotations

import tomllib
from collections import OrderedDict

import pytest
from helpers import ISSUER, NOW, PLUGIN_EXAMPLE, write_distribution

from verifiers import (
    DetailField,
    InvalidDetail,
    OfflineVerifier,
    Scene,
    SceneRegistry,
    SceneRegistryError,
    check_detail,
    declared_detail,
)
from verifiers.errors import Replayed, SceneRejection
from verifiers.scenes.clinic import ClinicScene
from verifiers.scenes.transit import TransitScene
from verifiers.scenes.venue import VenueScene


@pytest.fixture
def library_verifier(library_plugin, key_set) -> OfflineVerifier:
    """A verifier built exactly as an integrator builds one: scenes from entry points."""
    return OfflineVerifier(key_set, issuer=ISSUER, venue_id="library-hq", device_id="desk-1")


def fresh(make_token, now: int = NOW, **claims):
    return make_token(now=now, scp=["library", "venue"], **claims)


# -- the registry ------------------------------------------------------------------


def test_registry_refuses_a_second_scene_of_the_same_name():
    registry = SceneRegistry()
    registry.register("clinic", ClinicScene)

    with pytest.raises(SceneRegistryError) as raised:
        registry.register("clinic", TransitScene)

    message = str(raised.value)
    assert "'clinic'" in message
    assert "verifiers.scenes.clinic.ClinicScene" in message
    assert "verifiers.scenes.transit.TransitScene" in message
    assert registry.names() == ["clinic"]
    assert isinstance(registry.create("clinic"), ClinicScene)  # the first one stays


def test_registering_the_same_class_again_is_harmless():
    registry = SceneRegistry()
    registry.register("clinic", ClinicScene)
    registry.register("clinic", ClinicScene)

    assert registry.names() == ["clinic"]


class NotAScene:
    def parse_context(self, context, visit_defaults):
        return context

    def decide(self, visit, context, state):
        return None


@pytest.mark.parametrize(
    "candidate", [NotAScene, OrderedDict, ClinicScene(), "verifiers.scenes.clinic:ClinicScene", None]
)
def test_registry_refuses_what_is_not_a_scene_class(candidate):
    registry = SceneRegistry()

    with pytest.raises(SceneRegistryError, match=r"'odd'.*not a Scene subclass"):
        registry.register("odd", candidate)
    assert "odd" not in registry


def test_a_registered_scene_is_created_under_its_entry_point_name():
    registry = SceneRegistry()
    registry.register("museum", VenueScene)

    scene = registry.create("museum")

    assert isinstance(scene, VenueScene)
    assert scene.name == "museum"


def test_scenes_declare_their_codes_in_their_rules_order(library_plugin):
    registry = SceneRegistry.from_entry_points()

    assert registry.rejection_codes("clinic") == ["no_appointment", "already_checked_in"]
    assert registry.rejection_codes("transit") == ["passback", "no_entry"]
    assert registry.rejection_codes("venue") == ["already_entered", "capacity_full", "no_reservation"]
    assert registry.rejection_codes("library") == ["loan_limit"]
    every = registry.rejection_codes()
    assert every[:3] == ["malformed", "wrong_type", "alg_not_allowed"] and every[-1] == "no_reservation"
    assert len(every) == len(set(every))


class UndeclaredRejection(SceneRejection):
    pass


class Loud(SceneRejection):
    code = "loud"


@pytest.mark.parametrize(
    ("rejections", "message"),
    [
        ([Loud], "must be a tuple"),
        ((UndeclaredRejection,), "with a code of its own"),
        ((ValueError,), "with a code of its own"),
        ((Replayed,), "with a code of its own"),
        ((type("Shadow", (SceneRejection,), {"code": "replayed"}),), "'replayed' is a rule's code"),
    ],
)
def test_registry_refuses_rejections_that_are_not_the_scenes_own(rejections, message):
    scene_class = type("Odd", (VenueScene,), {"rejections": rejections})

    with pytest.raises(SceneRegistryError, match=message):
        SceneRegistry().register("odd", scene_class)


def test_builtin_scenes_come_from_entry_points():
    registry = SceneRegistry.from_entry_points()

    assert {"clinic", "transit", "venue"} <= set(registry.names())
    assert isinstance(registry.create("clinic"), ClinicScene)
    assert isinstance(registry.create("transit"), TransitScene)
    assert isinstance(registry.create("venue"), VenueScene)


def test_a_verifier_knows_only_its_registrys_scenes(key_set, make_token):
    registry = SceneRegistry()
    registry.register("clinic", ClinicScene)
    verifier = OfflineVerifier(key_set, issuer=ISSUER, scenes=registry)

    clinic = verifier.verify(make_token(), "clinic", {"department": "dental"}, now=NOW)
    transit = verifier.verify(make_token(), "transit", {"station": "A", "direction": "in"}, now=NOW)

    assert (clinic.code, transit.code) == ("accepted", "unknown_scene")


# -- an out-of-tree scene ------------------------------------------------------------


def test_the_example_distribution_declares_its_scene():
    project = tomllib.loads((PLUGIN_EXAMPLE / "pyproject.toml").read_text())["project"]

    assert project["name"] == "codeservice-scene-library"
    assert project["entry-points"]["codeservice.scenes"] == {"library": "library_scene:LibraryScene"}


def test_out_of_tree_scene_is_found_through_its_entry_point(library_plugin):
    registry = SceneRegistry.from_entry_points()

    assert {"clinic", "library", "transit", "venue"} <= set(registry.names())
    scene = registry.create("library")
    assert isinstance(scene, Scene)
    assert type(scene).__module__ == "library_scene"


def test_out_of_tree_scene_describes_its_context_like_a_built_in_one(library_plugin):
    help_by_scene = SceneRegistry.from_entry_points().context_help()

    assert help_by_scene["library"] == "`branch` (string)"
    assert help_by_scene["transit"].startswith("`station` (string)")


def test_out_of_tree_scene_is_unknown_until_installed(verifier, make_token):
    decision = verifier.verify(fresh(make_token), "library", {"branch": "Pudong"}, now=NOW)

    assert decision.code == "unknown_scene"


def test_out_of_tree_scene_verifies_codes(library_verifier, make_token):
    decision = library_verifier.verify(fresh(make_token), "library", {"branch": "Pudong"}, now=NOW)

    assert (decision.ok, decision.code, decision.scene) == (True, "accepted", "library")
    assert decision.detail == {"branch": "Pudong", "loans_today": 1}
    record = library_verifier.pending_records()[-1]
    assert (record["scene"], record["code"], record["detail"]) == ("library", "accepted", decision.detail)
    assert (record["venue_id"], record["device_id"]) == ("library-hq", "desk-1")


def test_out_of_tree_scene_rule_loan_limit(library_verifier, make_token):
    branches = ["Pudong", "Xuhui", "Pudong", "Jing'an"]
    decisions = [
        library_verifier.verify(fresh(make_token, NOW + i), "library", {"branch": b}, now=NOW + i)
        for i, b in enumerate(branches)
    ]
    other_resident = library_verifier.verify(
        fresh(make_token, NOW + 10, sub="Zq3xT0bL9mWc2YhE"), "library", {"branch": "Pudong"}, now=NOW + 10
    )
    next_day = library_verifier.verify(fresh(make_token, NOW + 86400), "library", {"branch": "Pudong"}, now=NOW + 86400)

    assert [d.code for d in decisions] == ["accepted", "accepted", "accepted", "loan_limit"]
    assert decisions[3].detail == {"branch": "Jing'an", "loans_today": 3}
    assert (other_resident.code, next_day.code) == ("accepted", "accepted")


def test_out_of_tree_scene_declares_the_detail_it_logs(library_plugin, library_verifier, make_token):
    registry = SceneRegistry.from_entry_points()
    fields = registry.usage_fields("library")
    assert [(f.name, f.label("zh"), f.label("en")) for f in fields] == [
        ("branch", "分馆", "Branch"), ("loans_today", "今日借阅", "Loans today")
    ]
    decisions = [
        library_verifier.verify(fresh(make_token, NOW + i), "library", {"branch": "Pudong"}, now=NOW + i)
        for i in range(4)
    ]
    assert [d.code for d in decisions] == ["accepted", "accepted", "accepted", "loan_limit"]
    for decision in decisions:
        check_detail(fields, decision.detail)
    with pytest.raises(InvalidDetail) as raised:
        check_detail(fields, {"branch": "Pudong", "note": "call 400-820-0000"})
    assert (raised.value.field, raised.value.code) == ("note", "invalid_detail")


def test_out_of_tree_scene_takes_configuration(library_plugin, key_set, make_token):
    verifier = OfflineVerifier(key_set, issuer=ISSUER, scene_config={"library": {"daily_limit": 1}})
    first = verifier.verify(fresh(make_token), "library", {"branch": "Pudong"}, now=NOW)
    second = verifier.verify(fresh(make_token, NOW + 1), "library", {"branch": "Pudong"}, now=NOW + 1)

    assert (first.code, second.code) == ("accepted", "loan_limit")


@pytest.mark.parametrize("context", [{}, {"branch": 5}, {"branch": ""}, ["Pudong"], None])
def test_out_of_tree_scene_bad_context(library_verifier, make_token, context):
    decision = library_verifier.verify(fresh(make_token), "library", context, now=NOW)

    assert (decision.ok, decision.code) == (False, "bad_context")


def test_out_of_tree_scene_gets_the_common_rules_first(library_verifier, make_token):
    token = fresh(make_token)
    library_verifier.verify(token, "library", {"branch": "Pudong"}, now=NOW)

    replayed = library_verifier.verify(token, "library", {"branch": "Pudong"}, now=NOW + 1)
    not_in_scope = library_verifier.verify(make_token(scp=["transit"]), "library", {"branch": "Pudong"}, now=NOW)

    assert (replayed.code, not_in_scope.code) == ("replayed", "scene_not_allowed")


def test_built_in_scenes_still_work_beside_a_plug_in(library_verifier, make_token):
    decision = library_verifier.verify(fresh(make_token), "venue", {}, now=NOW)

    assert decision.code == "accepted"
    assert decision.detail["venue_id"] == "library-hq"


# -- broken and clashing plug-ins ------------------------------------------------------


def test_broken_plug_in_is_named(site):
    write_distribution(site, "codeservice-scene-ghost", {"ghost": "no_such_module_for_codeservice:GhostScene"})

    with pytest.raises(SceneRegistryError) as raised:
        SceneRegistry.from_entry_points()

    assert "'ghost'" in str(raised.value)
    assert "no_such_module_for_codeservice:GhostScene" in str(raised.value)


def test_plug_in_naming_a_missing_class_is_named(site):
    write_distribution(site, "codeservice-scene-typo", {"typo": "verifiers.scenes.venue:VenuScene"})

    with pytest.raises(SceneRegistryError, match=r"'typo'.*verifiers\.scenes\.venue:VenuScene"):
        SceneRegistry.from_entry_points()


def test_plug_in_that_is_not_a_scene_is_refused(site):
    write_distribution(site, "codeservice-scene-odd", {"odd": "collections:OrderedDict"})

    with pytest.raises(SceneRegistryError, match=r"'odd'.*not a Scene subclass"):
        SceneRegistry.from_entry_points()


def test_broken_plug_in_stops_the_verifier_at_construction(site, key_set):
    write_distribution(site, "codeservice-scene-ghost", {"ghost": "no_such_module_for_codeservice:GhostScene"})

    with pytest.raises(SceneRegistryError, match="'ghost'"):
        OfflineVerifier(key_set, issuer=ISSUER)


def test_two_distributions_registering_the_same_name_are_refused(library_plugin):
    write_distribution(library_plugin, "other-library-scenes", {"library": "verifiers.scenes.venue:VenueScene"})

    with pytest.raises(SceneRegistryError) as raised:
        SceneRegistry.from_entry_points()

    message = str(raised.value)
    assert "'library'" in message
    assert "library_scene.LibraryScene" in message
    assert "verifiers.scenes.venue.VenueScene" in message


def test_a_plug_in_may_not_take_a_built_in_name(library_plugin):
    write_distribution(library_plugin, "codeservice-scene-fake-clinic", {"clinic": "library_scene:LibraryScene"})

    with pytest.raises(SceneRegistryError, match="'clinic'"):
        SceneRegistry.from_entry_points()


# -- usage detail declarations ---------------------------------------------------------------


class Undeclared(Scene):
    """A scene written before scenes declared their detail: it still registers and verifies."""

    def parse_context(self, context, visit_defaults):
        return context

    def decide(self, visit, context, state):
        raise NotImplementedError


def test_a_scene_that_declares_nothing_allows_only_an_empty_detail():
    registry = SceneRegistry()
    registry.register("gym", Undeclared)

    assert registry.usage_fields("gym") == () == registry.usage_fields("nowhere") == registry.usage_fields(None)
    check_detail((), {})
    with pytest.raises(InvalidDetail, match="declares no detail"):
        check_detail(registry.usage_fields("gym"), {"message": "x"})
    assert declared_detail((), {"message": "x"}) == {}


@pytest.mark.parametrize(
    "fields",
    [
        [DetailField("a", "text")],
        (DetailField("a", "text"), {"name": "b"}),
        (DetailField("a", "text"), DetailField("a", "integer")),
    ],
    ids=["a list", "a dict", "a name twice"],
)
def test_registry_refuses_a_malformed_declaration(fields):
    odd = type("Odd", (Undeclared,), {"usage_fields": fields})

    with pytest.raises(SceneRegistryError, match=r"'odd'.*usage.field"):
        SceneRegistry().register("odd", odd)


@pytest.mark.parametrize(
    "make",
    [
        lambda: DetailField("", "text"),
        lambda: DetailField("a", "float"),
        lambda: DetailField("a", "integer", choices={"1": {}}),
    ],
    ids=["no name", "an unknown kind", "integer choices"],
)
def test_a_malformed_detail_field_is_refused_where_it_is_written(make):
    with pytest.raises(ValueError):
        make()


FIELDS = (
    DetailField("station", "text", {"zh": "车站", "en": "Station"}, max_length=5),
    DetailField("direction", "text", choices={"in": {"zh": "进站", "en": "Entry"}, "out": {}}),
    DetailField("line", "text", nullable=True),
    DetailField("fare", "integer", minimum=0, maximum=10, nullable=True),
)


@pytest.mark.parametrize(
    ("detail", "field", "problem"),
    [
        ({"note": "x"}, "note", "is not a field of this scene's detail (it has station, direction, line, fare)"),
        ({"station": 1}, "station", "must be a non-blank string of at most 5 characters"),
        ({"station": " "}, "station", "must be a non-blank string of at most 5 characters"),
        ({"station": "abcdef"}, "station", "must be a non-blank string of at most 5 characters"),
        ({"station": "\ud800"}, "station", "must be a non-blank string of at most 5 characters"),
        ({"station": None}, "station", "must not be null"),
        ({"direction": "up"}, "direction", "must be one of 'in', 'out'"),
        ({"direction": ["in"]}, "direction", "must be one of 'in', 'out'"),
        ({"fare": True}, "fare", "must be an integer"),
        ({"fare": 1.0}, "fare", "must be an integer"),
        ({"fare": 11}, "fare", "must be an integer from 0 to 10"),
        ({"fare": -1}, "fare", "must be an integer from 0 to 10"),
        (
            {"station": "A", 5: "x"},
            "5",
            "is not a field of this scene's detail (it has station, direction, line, fare)",
        ),
    ],
)
def test_check_detail_names_the_member_and_the_problem(detail, field, problem):
    with pytest.raises(InvalidDetail) as raised:
        check_detail(FIELDS, detail)

    assert (raised.value.field, raised.value.problem) == (field, problem)


def test_check_detail_allows_absent_members_and_nulls_where_declared():
    check_detail(FIELDS, {})
    check_detail(FIELDS, {"station": "A", "direction": "out", "line": None, "fare": None})
    check_detail(FIELDS, {"fare": 0})
    check_detail(FIELDS, {"fare": 10, "station": "ABCDE"})


def test_declared_detail_keeps_only_declared_well_formed_members_in_declaration_order():
    detail = {"note": "call 400", "fare": 99, "line": None, "direction": "up", "station": "A"}

    assert list(declared_detail(FIELDS, detail).items()) == [("station", "A"), ("line", None)]


def test_labels_fall_back_to_the_name_and_values_to_themselves():
    station, direction, line, _ = FIELDS

    assert (station.label("zh"), station.label("en"), line.label("en")) == ("车站", "Station", "line")
    assert (direction.value_text("in", "zh"), direction.value_text("in", "en")) == ("进站", "Entry")
    assert (direction.value_text("out", "en"), station.value_text("A", "zh")) == ("out", "A")
