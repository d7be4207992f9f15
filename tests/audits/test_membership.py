"""Membership inference against real models trained by privagg's training code on digits."""

import numpy as np
import pytest
import torch

from audits.errors import AuditError
from audits.membership import (
    RMIA,
    ExampleStats,
    LiRA,
    LossAttack,
    ShadowModels,
    TrainingRecipe,
    balanced_keep,
    example_stats,
    membership_audit,
)
from audits.metrics import dp_max_auc, dp_max_tpr
from fl_core.data import load_dataset
from fl_core.models import build_model, get_flat


@pytest.fixture(scope="module")
def pool():
    torch.set_num_threads(1)
    ds = load_dataset("digits")
    rng = np.random.default_rng(0)
    mem = rng.choice(ds.num_train, 150, replace=False)
    non = rng.choice(ds.num_test, 150, replace=False)
    x = np.concatenate([ds.x_train[mem], ds.x_test[non]])
    y = np.concatenate([ds.y_train[mem], ds.y_test[non]])
    member = np.r_[np.ones(150, bool), np.zeros(150, bool)]
    torch.manual_seed(0)

    def factory():
        return build_model("mlp", ds.input_shape, ds.num_outputs)

    return ds, x, y, member, factory, get_flat(factory())


def test_example_stats_phi_is_logit_of_the_label_probability():
    model = torch.nn.Linear(2, 3)
    x = np.array([[1.0, -2.0], [0.5, 0.5]], np.float32)
    y = np.array([2, 0])
    s = example_stats(model, x, y, "classification")
    p = torch.softmax(model(torch.from_numpy(x)).double(), 1).detach().numpy()[[0, 1], y]
    np.testing.assert_allclose(s.prob, p, rtol=1e-12)
    np.testing.assert_allclose(s.phi, np.log(p / (1 - p)), rtol=1e-9)
    np.testing.assert_allclose(s.loss, -np.log(p), rtol=1e-12)
    assert not model.training


def test_balanced_keep_puts_every_example_in_half_the_shadows():
    keep = balanced_keep(8, 1000, np.random.default_rng(0))
    assert (keep.sum(0) == 4).all()
    assert abs(keep.sum(1).mean() - 500) < 1e-9


def test_lira_and_rmia_scores_on_synthetic_statistics():
    # two examples, four shadows: example 0 IN shadows 0,1; example 1 IN shadows 2,3
    keep = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], bool)
    phi = np.array([[3.0, 0.0], [5.0, 0.0], [1.0, 2.0], [-1.0, 4.0]])
    st = tuple(ExampleStats(np.zeros(2), 1 / (1 + np.exp(-p)), p) for p in phi)
    sh = ShadowModels(keep, st)
    tgt = ExampleStats(np.zeros(2), np.array([0.9, 0.5]), np.array([4.0, 0.0]))
    # offline: OUT phis are (1, -1) for example 0 and (0, 0) for example 1, so mu_out = (0, 0); fixed
    # variance pools the four OUT residuals (1, -1, 0, 0): s_out^2 = 2 / 4
    off = LiRA(online=False).score(tgt, sh)
    s_out = np.sqrt(((1 - 0) ** 2 + (-1 - 0) ** 2 + 0 + 0) / 4)
    np.testing.assert_allclose(off, [4.0 / s_out, 0.0])
    on = LiRA(online=True).score(tgt, sh)
    assert on[0] > 0 > on[1]  # example 0 looks IN, example 1 looks OUT
    r = RMIA().score(tgt, sh)
    assert r[0] == 1.0 and r[1] == 0.5


def test_overfit_model_is_attacked(pool):
    ds, x, y, member, factory, start = pool
    recipe = TrainingRecipe(factory, start, "classification", epochs=80, batch_size=16, lr=0.1)
    target = recipe.train(x[member], y[member], seed=1)
    res = membership_audit(target, x, y, member, "classification", recipe=recipe, shadows=4, epsilon=None)
    auc = {k: v["metrics"]["auc"] for k, v in res["attacks"].items()}
    assert set(auc) == {"loss", "lira_online", "lira_offline", "rmia"}
    assert auc["loss"] > 0.58
    assert auc["lira_online"] > 0.62 and auc["rmia"] > 0.62
    assert not target.training
    # an empirical epsilon is claimed for an undefended model
    assert max(v["epsilon_lower_bound"]["epsilon"] for v in res["attacks"].values()) > 0.5


def test_dp_sgd_model_at_eps_one_stays_inside_its_bound(pool):
    from dp.calibration import calibrate_dp_sgd
    from dp.local import DPSGDConfig

    ds, x, y, member, factory, start = pool
    z = calibrate_dp_sgd(1.0, 1e-5, 150, 30, 10)
    cfg = DPSGDConfig(noise_multiplier=z, max_grad_norm=1.0, batch_size=30, epochs=10, lr=0.5, delta=1e-5)
    recipe = TrainingRecipe(factory, start, "classification", epochs=10, batch_size=30, lr=0.5, dp_sgd=cfg)
    target = recipe.train(x[member], y[member], seed=3)
    res = membership_audit(target, x, y, member, "classification", recipe=recipe, shadows=4, epsilon=1.0)
    for name, r in res["attacks"].items():
        m = r["metrics"]
        assert m["auc"] <= dp_max_auc(1.0, 1e-5), name
        assert m["tpr_at_1%_fpr"] <= dp_max_tpr(0.01, 1.0, 1e-5) + 0.02, name
        assert r["epsilon_lower_bound"]["epsilon"] <= 1.0, name


def test_attack_extension_point_and_errors(pool):
    ds, x, y, member, factory, start = pool

    class Oracle(LossAttack):
        name = "oracle"

        def score(self, target, shadows):
            return member.astype(float)

    res = membership_audit(factory(), x, y, member, "classification", attacks=[Oracle()])
    assert res["attacks"]["oracle"]["metrics"]["auc"] == 1.0
    with pytest.raises(AuditError, match="recipe"):
        membership_audit(factory(), x, y, member, "classification", attacks=["lira"])
    with pytest.raises(AuditError, match="unknown membership attack"):
        membership_audit(factory(), x, y, member, "classification", attacks=["magic"])
    with pytest.raises(AuditError, match="even"):
        recipe = TrainingRecipe(factory, start, "classification", 1, 16, 0.1)
        membership_audit(
            factory(), x, y, member, "classification", attacks=[RMIA()], recipe=recipe, shadows=3
        )
