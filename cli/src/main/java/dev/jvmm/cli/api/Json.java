package dev.jvmm.cli.api;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.core.JsonLocation;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonMappingException;
import com.fasterxml.jackson.databind.MapperFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.PropertyNamingStrategies;
import com.fasterxml.jackson.databind.exc.MismatchedInputException;
import com.fasterxml.jackson.databind.exc.UnrecognizedPropertyException;
import com.fasterxml.jackson.databind.json.JsonMapper;
import java.io.IOException;
import java.util.List;
import java.util.stream.Collectors;

/**
 * The API's JSON, as strict as Firecracker's serde types: unknown fields, duplicate keys, trailing data, strings
 * for numbers and fractions for integers are all refused, and the refusal names the field in serde's style.
 */
final class Json {
    private static final ObjectMapper MAPPER = JsonMapper.builder()
            .enable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES)
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
            .enable(DeserializationFeature.FAIL_ON_NULL_FOR_PRIMITIVES)
            .disable(DeserializationFeature.ACCEPT_FLOAT_AS_INT)
            .disable(MapperFeature.ALLOW_COERCION_OF_SCALARS)
            .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
            .serializationInclusion(JsonInclude.Include.NON_NULL)
            .propertyNamingStrategy(PropertyNamingStrategies.SNAKE_CASE) // Firecracker's field names
            .build();

    private Json() {}

    /** The body as a {@code type}; every problem is an {@link ApiException} of kind BAD_JSON saying what and where. */
    static <T> T read(byte[] body, Class<T> type) {
        T value;
        try {
            value = MAPPER.readValue(body, type);
        } catch (IOException e) {
            throw new ApiException(ApiException.Kind.BAD_JSON, describe(e));
        }
        if (value == null) throw new ApiException(ApiException.Kind.BAD_JSON, "expected a JSON object, not null");
        return value;
    }

    static String write(Object value) {
        try {
            return MAPPER.writeValueAsString(value);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("cannot write " + value.getClass().getSimpleName() + " as JSON", e);
        }
    }

    /** Jackson's exception in serde's words: {@code unknown field `x`, expected one of `a`, `b` at line 1 column 7}. */
    static String describe(IOException e) {
        String where = e instanceof JsonProcessingException j ? at(j.getLocation()) : "";
        if (e instanceof UnrecognizedPropertyException u) {
            String known = u.getKnownPropertyIds() == null
                    ? ""
                    : u.getKnownPropertyIds().stream()
                            .map(id -> "`" + id + "`")
                            .sorted()
                            .collect(Collectors.joining(", "));
            return "unknown field `" + u.getPropertyName() + "`" + (known.isEmpty() ? "" : ", expected one of " + known)
                    + where;
        }
        if (e instanceof MismatchedInputException m && m.getOriginalMessage().startsWith("Trailing token"))
            return "trailing characters" + where;
        if (e instanceof MismatchedInputException m && m.getTargetType() != null) {
            String field = field(m.getPath());
            return "invalid type" + (field.isEmpty() ? "" : " for `" + field + "`") + ": expected "
                    + expected(m.getTargetType()) + where;
        }
        if (e instanceof JsonProcessingException j)
            return j.getOriginalMessage().replaceAll("\\s*\\n.*", "") + where;
        return e.getMessage();
    }

    private static String at(JsonLocation l) {
        return l == null || l.getLineNr() < 1 ? "" : " at line " + l.getLineNr() + " column " + l.getColumnNr();
    }

    private static String field(List<JsonMappingException.Reference> path) {
        return path.stream()
                .map(r -> r.getFieldName() != null ? r.getFieldName() : "[" + r.getIndex() + "]")
                .collect(Collectors.joining("."))
                .replace(".[", "[");
    }

    private static String expected(Class<?> type) {
        if (type == Integer.class || type == int.class || type == Long.class || type == long.class) return "an integer";
        if (type == Boolean.class || type == boolean.class) return "a boolean";
        if (type == String.class) return "a string";
        if (List.class.isAssignableFrom(type)) return "an array";
        return "an object";
    }
}
