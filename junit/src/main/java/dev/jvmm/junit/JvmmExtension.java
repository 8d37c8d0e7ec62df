package dev.jvmm.junit;

import dev.jvmm.microvm.MicroVm;
import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.extension.AfterTestExecutionCallback;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.BeforeEachCallback;
import org.junit.jupiter.api.extension.ExtensionConfigurationException;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.ParameterContext;
import org.junit.jupiter.api.extension.ParameterResolutionException;
import org.junit.jupiter.api.extension.ParameterResolver;
import org.junit.platform.commons.support.HierarchyTraversalMode;
import org.junit.platform.commons.support.ModifierSupport;
import org.junit.platform.commons.support.ReflectionSupport;

/**
 * The extension behind {@link JvmmTest}: starts the {@link Vm @Vm} fields and parameters, closes each VM when its
 * scope ends (the class for a static field, the test for an instance field or a parameter), and when a test fails
 * puts the end of each VM's console (the last {@link #CONSOLE_TAIL} characters) in the test's report and on stderr.
 */
public final class JvmmExtension
        implements BeforeAllCallback, BeforeEachCallback, AfterTestExecutionCallback, ParameterResolver {
    /** A configuration parameter naming another {@link VmFactory} (this package's tests). */
    static final String FACTORY_PARAMETER = "dev.jvmm.junit.factory";
    /** How much of a console a failing test's report gets: its end, where the trouble usually is. */
    static final int CONSOLE_TAIL = 32 * 1024;

    private static final ExtensionContext.Namespace NAMESPACE = ExtensionContext.Namespace.create(JvmmExtension.class);

    public JvmmExtension() {}

    @Override
    public void beforeAll(ExtensionContext context) throws Exception {
        Class<?> testClass = context.getRequiredTestClass();
        for (Field field : vmFields(testClass, true)) {
            field.setAccessible(true);
            field.set(
                    null,
                    start(context, "static field " + describe(field), field.getType(), field.getAnnotation(Vm.class)));
        }
    }

    @Override
    public void beforeEach(ExtensionContext context) throws Exception {
        // The instances of enclosing classes too (@Nested): their instance fields are per test as well.
        for (Object instance : context.getRequiredTestInstances().getAllInstances()) {
            for (Field field : vmFields(instance.getClass(), false)) {
                field.setAccessible(true);
                field.set(
                        instance,
                        start(context, "field " + describe(field), field.getType(), field.getAnnotation(Vm.class)));
            }
        }
    }

    @Override
    public boolean supportsParameter(ParameterContext parameter, ExtensionContext context) {
        if (!parameter.isAnnotated(Vm.class)) return false;
        Class<?> type = parameter.getParameter().getType();
        Class<?> made = factory(context).type();
        if (!type.isAssignableFrom(made))
            throw new ParameterResolutionException("@Vm parameter " + parameter.getParameter() + " of "
                    + parameter.getDeclaringExecutable() + " must be of type " + made.getName());
        return true;
    }

    @Override
    public Object resolveParameter(ParameterContext parameter, ExtensionContext context) {
        Vm vm = parameter.findAnnotation(Vm.class).orElseThrow();
        String name = "parameter " + parameter.getIndex() + " of "
                + parameter.getDeclaringExecutable().getName();
        try {
            return start(context, name, parameter.getParameter().getType(), vm);
        } catch (ExtensionConfigurationException e) {
            throw e;
        } catch (Exception e) {
            throw new ParameterResolutionException("could not start the VM for " + name + ": " + e.getMessage(), e);
        }
    }

    @Override
    public void afterTestExecution(ExtensionContext context) {
        Optional<Throwable> failure = context.getExecutionException();
        if (failure.isEmpty()) return;
        // The test's own VMs first, then those of the classes around it (static fields).
        for (ExtensionContext c = context; c != null; c = c.getParent().orElse(null)) {
            Running running = c.getStore(NAMESPACE).get(key(c), Running.class);
            if (running == null) continue;
            for (Running.Entry e : running.entries()) report(context, e, failure.get());
        }
    }

    private static void report(ExtensionContext context, Running.Entry entry, Throwable failure) {
        String console;
        try {
            console = entry.console();
        } catch (RuntimeException e) {
            console = "(the console could not be read: " + e + ")";
        }
        String tail = tail(console);
        if (!tail.isEmpty()) context.publishReportEntry("jvmm console of " + entry.name(), tail);
        System.err.println("---- jvmm: " + context.getDisplayName() + " failed (" + failure + "); the console of "
                + entry.name() + (tail.length() < console.length() ? ", its last " + CONSOLE_TAIL + " characters" : "")
                + " ----");
        System.err.println(tail);
        System.err.println("---- end of the console of " + entry.name() + " ----");
    }

    /** The console's end, with control characters (escape sequences, carriage returns) made visible as '?'. */
    static String tail(String console) {
        String t = console.length() <= CONSOLE_TAIL ? console : console.substring(console.length() - CONSOLE_TAIL);
        StringBuilder b = new StringBuilder(t.length());
        for (int i = 0; i < t.length(); i++) {
            char c = t.charAt(i);
            b.append(c < 0x20 && c != '\n' && c != '\t' ? '?' : c);
        }
        return b.toString();
    }

    /** Starts a VM and registers it to be closed with this context (a class's, a test's). */
    private Object start(ExtensionContext context, String name, Class<?> declared, Vm vm) throws Exception {
        VmFactory<Object> factory = factory(context);
        if (!declared.isAssignableFrom(factory.type()))
            throw new ExtensionConfigurationException("@Vm " + name + " is a " + declared.getName() + ", not a "
                    + factory.type().getName());
        Class<?> testClass = context.getRequiredTestClass();
        MicroVm.Builder builder;
        boolean fromMethod = !vm.builder().isEmpty();
        if (fromMethod) {
            if (!hasDefaultAttributes(vm))
                throw new ExtensionConfigurationException("@Vm on " + name + " names builder = \"" + vm.builder()
                        + "\" and also sets other attributes: configure it in one place (the builder method)");
            builder = builderFrom(testClass, vm.builder(), name);
        } else {
            builder = builderFrom(vm, name);
        }
        Running running =
                context.getStore(NAMESPACE).getOrComputeIfAbsent(key(context), k -> new Running(), Running.class);
        Object started = factory.start(new VmFactory.Spec(name, vm, builder, fromMethod));
        running.add(name, started, factory);
        return started;
    }

    private static boolean hasDefaultAttributes(Vm vm) {
        return vm.memoryMiB() == 256
                && vm.cpus() == 1
                && !vm.network()
                && vm.forwardPorts().length == 0
                && vm.cmdline().isEmpty();
    }

    private static MicroVm.Builder builderFrom(Vm vm, String name) {
        if (vm.memoryMiB() <= 0 || vm.cpus() <= 0)
            throw new ExtensionConfigurationException("@Vm on " + name + ": memoryMiB and cpus must be positive, not "
                    + vm.memoryMiB() + " and " + vm.cpus());
        MicroVm.Builder b =
                MicroVm.builder().memory((long) vm.memoryMiB() << 20).cpus(vm.cpus());
        if (vm.network()) b.network();
        for (int port : vm.forwardPorts()) {
            try {
                b.forwardPort(port);
            } catch (IllegalArgumentException e) {
                throw new ExtensionConfigurationException(
                        "@Vm on " + name + ": forwardPorts holds " + port + ", not a TCP port (1-65535)");
            }
        }
        if (!vm.cmdline().isEmpty()) b.cmdline(vm.cmdline());
        return b;
    }

    private static MicroVm.Builder builderFrom(Class<?> testClass, String methodName, String name) throws Exception {
        List<Method> found = ReflectionSupport.findMethods(
                testClass,
                m -> m.getName().equals(methodName) && m.getParameterCount() == 0,
                HierarchyTraversalMode.BOTTOM_UP);
        if (found.isEmpty()
                || !ModifierSupport.isStatic(found.getFirst())
                || !MicroVm.Builder.class.isAssignableFrom(found.getFirst().getReturnType()))
            throw new ExtensionConfigurationException("@Vm on " + name + " names builder = \"" + methodName
                    + "\", but " + testClass.getName() + " has no static, parameterless method of that name"
                    + " returning MicroVm.Builder");
        Method method = found.getFirst();
        method.setAccessible(true);
        MicroVm.Builder builder = (MicroVm.Builder) method.invoke(null);
        if (builder == null)
            throw new ExtensionConfigurationException(testClass.getName() + "." + methodName + "() returned null");
        return builder;
    }

    /**
     * The class's @Vm fields, a superclass's first, each class's in the order written (getDeclaredFields' order on
     * HotSpot; JUnit's own field search sorts them otherwise), so VMs start in the order a reader expects.
     */
    private static List<Field> vmFields(Class<?> testClass, boolean statics) {
        List<Class<?>> chain = new ArrayList<>();
        for (Class<?> c = testClass; c != null && c != Object.class; c = c.getSuperclass()) chain.addFirst(c);
        List<Field> fields = new ArrayList<>();
        for (Class<?> c : chain)
            for (Field f : c.getDeclaredFields()) {
                if (!f.isAnnotationPresent(Vm.class) || Modifier.isStatic(f.getModifiers()) != statics) continue;
                if (Modifier.isFinal(f.getModifiers()))
                    throw new ExtensionConfigurationException("@Vm field " + describe(f) + " must not be final");
                fields.add(f);
            }
        return fields;
    }

    @SuppressWarnings("unchecked")
    private static VmFactory<Object> factory(ExtensionContext context) {
        Optional<String> name = context.getConfigurationParameter(FACTORY_PARAMETER);
        if (name.isEmpty()) return (VmFactory<Object>) (VmFactory<?>) new MicroVmFactory();
        try {
            var constructor = Class.forName(name.get(), true, JvmmExtension.class.getClassLoader())
                    .getDeclaredConstructor();
            constructor.setAccessible(true);
            return (VmFactory<Object>) constructor.newInstance();
        } catch (ReflectiveOperationException | ClassCastException e) {
            throw new ExtensionConfigurationException(FACTORY_PARAMETER + "=" + name.get() + ": " + e, e);
        }
    }

    private static String describe(Field f) {
        return f.getDeclaringClass().getSimpleName() + "." + f.getName();
    }

    private static String key(ExtensionContext context) {
        // Per context: a store's get also looks in its parents', which hold their own VMs.
        return "vms " + context.getUniqueId();
    }

    /** The VMs of one context, closed (last started first) when it ends, whatever happened in it. */
    private static final class Running implements ExtensionContext.Store.CloseableResource {
        record Entry(String name, Object vm, VmFactory<Object> factory) {
            String console() {
                return factory.console(vm);
            }
        }

        private final List<Entry> entries = new ArrayList<>();

        synchronized void add(String name, Object vm, VmFactory<Object> factory) {
            entries.add(new Entry(name, vm, factory));
        }

        synchronized List<Entry> entries() {
            return List.copyOf(entries);
        }

        @Override
        public void close() throws Exception {
            Exception first = null;
            for (Entry e : entries().reversed()) {
                try {
                    e.factory().close(e.vm());
                } catch (Exception ex) {
                    if (first == null) first = ex;
                    else first.addSuppressed(ex);
                }
            }
            if (first != null) throw first;
        }
    }
}
