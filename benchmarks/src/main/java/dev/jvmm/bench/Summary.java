package dev.jvmm.bench;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The report's first table and chart (summary.png): each headline figure as a ratio to a reference measured in the
 * same run, its spread, and the goal it is held to (issues #16 and #17), with whether the median meets it.
 */
final class Summary {
    /** Which side of the goal is good. */
    enum Better {
        LOWER,
        HIGHER
    }

    /**
     * One figure: {@code ratio} is jvmm / reference (median and min–max over rounds or iteration pairs);
     * {@code goal} NaN where the figure has none.
     */
    record Line(String figure, Stats ratio, String reference, double goal, Better better) {
        String verdict() {
            if (!ratio.present()) return "not measured";
            if (Double.isNaN(goal)) return "-";
            boolean met = better == Better.LOWER ? ratio.median() <= goal : ratio.median() >= goal;
            return met ? "met" : "not met";
        }

        String goalText() {
            if (Double.isNaN(goal)) return "-";
            return (better == Better.LOWER ? "≤ " : "≥ ") + trim(goal);
        }
    }

    private final List<Line> lines = new ArrayList<>();

    void add(String figure, Stats ratio, String reference, double goal, Better better) {
        lines.add(new Line(figure, ratio, reference, goal, better));
    }

    void add(String figure, Stats ratio, String reference) {
        add(figure, ratio, reference, Double.NaN, Better.LOWER);
    }

    List<Line> lines() {
        return lines;
    }

    /** The Markdown table. */
    List<String> table() {
        List<String> out = new ArrayList<>();
        out.add("| figure | jvmm / reference, median (min–max) | reference (same run) | goal | |");
        out.add("|---|---|---|---|---|");
        for (Line l : lines)
            out.add(String.format(
                    "| %s | %s | %s | %s | %s |",
                    l.figure(), l.ratio().format("%.2f"), l.reference(), l.goalText(), l.verdict()));
        return out;
    }

    /** The medians as bars (summary.png), a figure per bar, the goals as a second series beside them. */
    void chart(Path file) {
        Map<String, Map<String, Double>> groups = new LinkedHashMap<>();
        for (Line l : lines) {
            if (!l.ratio().present()) continue;
            Map<String, Double> bars = new LinkedHashMap<>();
            bars.put("jvmm / reference (median)", l.ratio().median());
            bars.put("goal", l.goal());
            groups.put(l.figure(), bars);
        }
        if (!groups.isEmpty())
            Charts.horizontalBars(file, "jvmm / same-run reference (1 = as fast or as small)", "ratio", groups);
    }

    /**
     * A ratio of two independent sets of measurements (not paired rounds): median over median, and as spread the
     * widest the two sets allow (min over max, max over min).
     */
    static Stats ratioOf(Stats top, Stats bottom) {
        if (!top.present() || !bottom.present()) return Stats.of(new double[0]);
        double median = top.median() / bottom.median();
        double min = top.min() / bottom.max(), max = top.max() / bottom.min();
        return new Stats(Math.min(top.count(), bottom.count()), median, min, max, min, max);
    }

    private static String trim(double v) {
        return v == Math.rint(v)
                ? String.format("%.0f", v)
                : String.format("%.2f", v).replaceAll("0$", "");
    }
}
