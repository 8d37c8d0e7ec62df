package dev.jvmm.bench;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.text.DecimalFormat;
import java.text.FieldPosition;
import java.text.NumberFormat;
import java.text.ParsePosition;
import java.util.Map;
import org.HdrHistogram.Histogram;
import org.HdrHistogram.HistogramIterationValue;
import org.jfree.chart.ChartFactory;
import org.jfree.chart.ChartUtils;
import org.jfree.chart.JFreeChart;
import org.jfree.chart.axis.CategoryAxis;
import org.jfree.chart.axis.CategoryLabelPositions;
import org.jfree.chart.axis.LogAxis;
import org.jfree.chart.axis.NumberTickUnit;
import org.jfree.chart.plot.PlotOrientation;
import org.jfree.chart.plot.XYPlot;
import org.jfree.data.category.DefaultCategoryDataset;
import org.jfree.data.xy.XYSeries;
import org.jfree.data.xy.XYSeriesCollection;

/** PNG charts for the report (JFreeChart, headless). */
final class Charts {
    static {
        System.setProperty("java.awt.headless", "true");
    }

    private Charts() {}

    /** Latency by percentile, x on a log scale of 1/(1-p) so the tail is visible (as HdrHistogram's plots). */
    static void percentiles(Path file, String title, Map<String, Histogram> series) {
        XYSeriesCollection data = new XYSeriesCollection();
        for (Map.Entry<String, Histogram> e : series.entrySet()) {
            XYSeries s = new XYSeries(e.getKey());
            for (HistogramIterationValue v : e.getValue().percentiles(5)) {
                double p = v.getPercentileLevelIteratedTo() / 100.0;
                if (p >= 0.99999) break;
                s.add(1 / (1 - p), v.getValueIteratedTo() / 1000.0);
            }
            data.addSeries(s);
        }
        JFreeChart chart = ChartFactory.createXYLineChart(
                title, "percentile", "exit-to-exit time (µs)", data, PlotOrientation.VERTICAL, true, false, false);
        XYPlot plot = chart.getXYPlot();
        LogAxis x = new LogAxis("percentile");
        x.setBase(10);
        x.setNumberFormatOverride(new PercentileFormat());
        x.setLowerBound(1);
        x.setUpperBound(100_000);
        x.setTickUnit(new NumberTickUnit(1)); // one tick per decade: 0%, 90%, 99%, ...
        plot.setDomainAxis(x);
        LogAxis y = new LogAxis("exit-to-exit time (µs, log scale)");
        y.setBase(10);
        y.setTickUnit(new NumberTickUnit(1));
        y.setNumberFormatOverride(new DecimalFormat("0.#"));
        y.setSmallestValue(1);
        plot.setRangeAxis(y);
        save(file, chart);
    }

    /** Grouped bars: one group per benchmark, one bar per VMM. */
    static void bars(Path file, String title, String valueLabel, Map<String, Map<String, Double>> groups) {
        DefaultCategoryDataset data = new DefaultCategoryDataset();
        groups.forEach((group, bars) -> bars.forEach((vmm, v) -> {
            if (!Double.isNaN(v)) data.addValue(v, vmm, group);
        }));
        JFreeChart chart =
                ChartFactory.createBarChart(title, "", valueLabel, data, PlotOrientation.VERTICAL, true, false, false);
        CategoryAxis x = chart.getCategoryPlot().getDomainAxis();
        x.setCategoryLabelPositions(CategoryLabelPositions.UP_45);
        x.setMaximumCategoryLabelWidthRatio(2f);
        save(file, chart);
    }

    /**
     * Horizontal bars (labels on the left, so long ones stay readable), one row per figure, one bar per series, and a
     * line at 1: the reference.
     */
    static void horizontalBars(Path file, String title, String valueLabel, Map<String, Map<String, Double>> rows) {
        DefaultCategoryDataset data = new DefaultCategoryDataset();
        rows.forEach((row, bars) -> bars.forEach((series, v) -> {
            if (!Double.isNaN(v)) data.addValue(v, series, row);
        }));
        JFreeChart chart = ChartFactory.createBarChart(
                title, "", valueLabel, data, PlotOrientation.HORIZONTAL, true, false, false);
        chart.getCategoryPlot().addRangeMarker(new org.jfree.chart.plot.ValueMarker(1.0));
        chart.getCategoryPlot().getDomainAxis().setMaximumCategoryLabelWidthRatio(0.45f);
        save(file, chart, 1000, 120 + 34 * rows.size());
    }

    private static void save(Path file, JFreeChart chart) {
        save(file, chart, 1000, 520);
    }

    private static void save(Path file, JFreeChart chart, int width, int height) {
        try {
            ChartUtils.saveChartAsPNG(file.toFile(), chart, width, height);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Labels 1/(1-p) ticks as percentiles: 10 -> 90%, 100 -> 99%, 1000 -> 99.9%. */
    private static final class PercentileFormat extends NumberFormat {
        private final DecimalFormat format = new DecimalFormat("0.#####");

        @Override
        public StringBuffer format(double number, StringBuffer to, FieldPosition pos) {
            return to.append(format.format(100 * (1 - 1 / number))).append('%');
        }

        @Override
        public StringBuffer format(long number, StringBuffer to, FieldPosition pos) {
            return format((double) number, to, pos);
        }

        @Override
        public Number parse(String source, ParsePosition pos) {
            return null;
        }
    }
}
