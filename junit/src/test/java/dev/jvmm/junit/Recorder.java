package dev.jvmm.junit;

import static org.junit.platform.engine.discovery.DiscoverySelectors.selectClass;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.platform.engine.TestExecutionResult;
import org.junit.platform.engine.reporting.ReportEntry;
import org.junit.platform.launcher.TestExecutionListener;
import org.junit.platform.launcher.TestIdentifier;
import org.junit.platform.launcher.core.LauncherDiscoveryRequestBuilder;
import org.junit.platform.launcher.core.LauncherFactory;

/** Runs a fixture class through the JUnit Platform's Launcher and keeps what happened, by display name. */
final class Recorder implements TestExecutionListener {
    final Map<String, TestExecutionResult> finished = new LinkedHashMap<>();
    final Map<String, String> skipped = new LinkedHashMap<>();
    final List<String> entryOwners = new ArrayList<>();
    final List<ReportEntry> entries = new ArrayList<>();

    /** With the fake VMs ({@link FakeVms}). */
    static Recorder run(Class<?> fixture) {
        return run(fixture, true);
    }

    static Recorder run(Class<?> fixture, boolean fake) {
        LauncherDiscoveryRequestBuilder request = LauncherDiscoveryRequestBuilder.request()
                .selectors(selectClass(fixture))
                // The fixtures are run only from here, never found by surefire (nested classes).
                .configurationParameter("junit.jupiter.extensions.autodetection.enabled", "false");
        if (fake) request.configurationParameter(JvmmExtension.FACTORY_PARAMETER, FakeVms.class.getName());
        Recorder recorder = new Recorder();
        LauncherFactory.create().execute(request.build(), recorder);
        return recorder;
    }

    @Override
    public void executionFinished(TestIdentifier id, TestExecutionResult result) {
        finished.put(id.getDisplayName(), result);
    }

    @Override
    public void executionSkipped(TestIdentifier id, String reason) {
        skipped.put(id.getDisplayName(), reason);
    }

    @Override
    public void reportingEntryPublished(TestIdentifier id, ReportEntry entry) {
        entryOwners.add(id.getDisplayName());
        entries.add(entry);
    }

    TestExecutionResult.Status status(String displayName) {
        TestExecutionResult r = finished.get(displayName);
        if (r == null) throw new AssertionError(displayName + " did not finish; finished: " + finished.keySet());
        return r.getStatus();
    }

    String failure(String displayName) {
        return finished.get(displayName).getThrowable().map(Throwable::toString).orElse("");
    }
}
