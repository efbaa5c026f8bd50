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
