"""Curves are drawn on their quantity's full range, so a reward that moves 0.00-0.12 does not fill the plot."""

from writing_rl.eval.report import frame_step_axis, pyplot


def _axis(key, steps, values):
    plt = pyplot()
    fig, ax = plt.subplots()
    ax.plot(steps, values)
    frame_step_axis(ax, key, values)
    fig.canvas.draw()
    return plt, fig, ax


def test_rewards_and_win_rates_span_zero_to_one_however_little_they_move():
    for key in ("reward", "judge/win_rate"):
        plt, fig, ax = _axis(key, [1, 2, 3], [0.0, 0.12, 0.04])
        assert ax.get_ylim() == (0.0, 1.0)
        plt.close(fig)


def test_a_reward_outside_zero_to_one_widens_the_axis_instead_of_being_cut():
    plt, fig, ax = _axis("reward", [1, 2], [-1.0, 0.5])  # reward.loss: -1
    assert ax.get_ylim() == (-1.0, 1.0)
    plt.close(fig)


def test_steps_are_whole_numbers_and_unbounded_curves_start_at_zero():
    plt, fig, ax = _axis("curriculum/mean_level", [1, 2], [1.2, 1.8])
    assert all(float(t).is_integer() for t in ax.get_xticks())
    assert ax.get_ylim()[0] == 0.0
    assert ax.get_ylim()[1] >= 1.8
    plt.close(fig)


def test_many_arms_get_a_column_each_instead_of_hiding_each_other(tmp_path):
    from matplotlib.image import imread

    from writing_rl.eval.ablation_report import CURVES, OVERLAID_ARMS, _plot_curves

    def runs(n_arms: int) -> list[dict]:
        rows = [{"step": s, "reward": 0.1 * s, "curriculum/mean_level": 1.0} for s in (1, 2, 3)]
        return [{"name": f"arm{a}/seed{k}", "rows": rows} for a in range(n_arms) for k in (0, 1)]

    shapes = {}
    for n in (OVERLAID_ARMS, OVERLAID_ARMS + 2):
        out = tmp_path / str(n)
        out.mkdir()
        _plot_curves(runs(n), out)
        height, width = imread(out / "ablation_curves.png").shape[:2]
        shapes[n] = (height, width)
    overlaid, grid = shapes[OVERLAID_ARMS], shapes[OVERLAID_ARMS + 2]
    assert overlaid[1] > 3 * overlaid[0]  # one row of panels, one per curve
    assert grid[0] > 2 * overlaid[0] and grid[0] / grid[1] > len(CURVES) / (OVERLAID_ARMS + 2) / 2  # a row per curve
