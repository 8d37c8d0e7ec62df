package dev.jvmm.bench;

import java.util.Arrays;
import java.util.List;

/** Median and spread of a handful of repetitions. */
public record Stats(int count, double median, double min, double max, double p25, double p75) {
    public static Stats of(List<Double> values) {
        return of(values.stream().mapToDouble(Double::doubleValue).toArray());
    }

    public static Stats of(double[] values) {
        if (values.length == 0) return new Stats(0, Double.NaN, Double.NaN, Double.NaN, Double.NaN, Double.NaN);
        double[] v = values.clone();
        Arrays.sort(v);
        return new Stats(v.length, quantile(v, 0.5), v[0], v[v.length - 1], quantile(v, 0.25), quantile(v, 0.75));
    }

    /** Linear interpolation between closest ranks of sorted values. */
    static double quantile(double[] sorted, double q) {
        double pos = q * (sorted.length - 1);
        int lo = (int) Math.floor(pos);
        int hi = Math.min(lo + 1, sorted.length - 1);
        return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
    }

    public boolean present() {
        return count > 0;
    }

    /** "1.23 (1.10–1.40)": median with min–max, or "n/a". */
    public String format(String pattern) {
        if (!present()) return "n/a";
        if (count == 1) return String.format(pattern, median);
        return String.format(pattern + " (" + pattern + "–" + pattern + ")", median, min, max);
    }
}
